/**
 * The Temporal Web UI as an operator sees it: Debian's Chromium, driven headless by
 * playwright-core, against the UI of a dev server that a test or script started. Used by
 * tests/webui.test.ts and by `npm run screenshots`.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { SEARCH_ATTRIBUTES } from '../../workflows/messages';
import { eventually } from './wait';

const ENSURE_CHROMIUM = path.resolve(__dirname, '../tools/ensure-chromium.sh');

/**
 * Flags this machine needs: no sandbox (root), no GPU, and nothing that reaches out to the
 * network on its own. Playwright adds --headless and a fresh temporary --user-data-dir.
 */
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];

/** Installs Debian's Chromium through the project's script when it is missing; returns its path. */
export function ensureChromium(): string {
  try {
    const output = execFileSync('bash', [ENSURE_CHROMIUM], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const executable = output.trim().split('\n').pop();
    if (!executable) throw new Error('the script printed no path');
    return executable;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(
      `Chromium is needed to check the Temporal Web UI and tests/tools/ensure-chromium.sh could not provide it: ${stderr || (error as Error).message}`,
      { cause: error },
    );
  }
}

export async function launchChromium(executablePath = ensureChromium()): Promise<Browser> {
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_FLAGS });
}

/** The workflow list's columns: the order's own search attributes next to the workflow's. */
const ORDER_LIST_COLUMNS = ['Status', 'Workflow ID', ...Object.keys(SEARCH_ATTRIBUTES), 'Start', 'End'];

export class TemporalWebUi {
  private constructor(
    readonly page: Page,
    private readonly baseUrl: string,
    private readonly namespace: string,
  ) {}

  /**
   * A page on the UI with the order columns chosen, as an operator does once through the
   * table's column settings; the UI keeps that choice in the browser's local storage.
   */
  static async open(browser: Browser, baseUrl: string, namespace = 'default'): Promise<TemporalWebUi> {
    const page = await browser.newPage({ viewport: { width: 1360, height: 760 } });
    const columns = { [namespace]: ORDER_LIST_COLUMNS.map((label, i) => ({ label, pinned: i < 2 })) };
    const stored = JSON.stringify(JSON.stringify(columns));
    await page.addInitScript({ content: `window.localStorage.setItem('namespace-workflow-table-columns', ${stored});` });
    return new TemporalWebUi(page, baseUrl, namespace);
  }

  async openWorkflowList(): Promise<void> {
    await this.page.goto(`${this.baseUrl}/namespaces/${this.namespace}/workflows`);
    await this.page.getByTestId('add-filter-button').waitFor();
  }

  /** Filters the list by a whole visibility query, typed into the raw query box (the `</>` button). */
  async searchByQuery(query: string): Promise<void> {
    await this.page.getByTestId('toggle-manual-query').click();
    await this.page.getByTestId('manual-search-input').fill(query);
    await this.page.getByTestId('manual-search-input').press('Enter');
    await this.page.waitForURL((url) => url.searchParams.get('query') === query);
  }

  /** Filters the list through the UI's "Add Filter" menu: attribute, equals, value, Apply. */
  async filterBy(attribute: string, value: string): Promise<void> {
    await this.page.getByTestId('add-filter-button').click();
    await this.page.getByTestId('filter-search').fill(attribute);
    await this.page.getByRole('menuitem').filter({ hasText: attribute }).first().click();
    await this.page.getByTestId(`dropdown-filter-chip-${attribute}-0-text`).fill(value);
    await this.page.getByTestId('apply-filter-button').click();
    await this.page.waitForURL((url) => (url.searchParams.get('query') ?? '').includes(attribute));
  }

  /** Workflow ids in the list as shown now. */
  async listedWorkflowIds(): Promise<string[]> {
    const rows = this.page.getByTestId('workflows-summary-configurable-table-row');
    const ids = await rows.locator('a[href*="/workflows/"]').allInnerTexts();
    return [...new Set(ids.map((text) => text.trim()))].sort();
  }

  /** Waits (bounded) until the list shows exactly `expected`; returns what it shows then. */
  async waitForListedWorkflowIds(expected: readonly string[], timeoutMs = 15_000): Promise<string[]> {
    const want = JSON.stringify([...expected].sort());
    return eventually(() => this.listedWorkflowIds(), (ids) => JSON.stringify(ids) === want, timeoutMs).catch(() =>
      this.listedWorkflowIds(),
    );
  }

  /** A workflow's page, on its History or User Metadata tab. */
  async openWorkflow(workflowId: string, tab: 'history' | 'user-metadata'): Promise<void> {
    await this.page.goto(`${this.baseUrl}/namespaces/${this.namespace}/workflows/${encodeURIComponent(workflowId)}`);
    await this.page.getByTestId('workflow-id-heading').filter({ hasText: workflowId }).waitFor();
    await this.page.getByTestId(`${tab}-tab`).click();
  }

  /**
   * The text of a markdown panel on the User Metadata tab: "Summary", "Details" (static) or
   * "Current Details". The UI renders each in a frame of its own.
   */
  async metadataPanel(title: 'Summary' | 'Details' | 'Current Details'): Promise<string> {
    const panel = this.page.locator('h3', { hasText: new RegExp(`^${title}$`) }).locator('xpath=ancestor::*[.//iframe][1]');
    const body = panel.locator('iframe').first().contentFrame().locator('body');
    await body.waitFor();
    return body.innerText();
  }

  /** The User Metadata tab's list of activities and timers with their summaries and states. */
  async eventsWithMetadata(): Promise<string> {
    const list = this.page.locator('h3', { hasText: /^Events with Metadata$/ }).locator('xpath=../..');
    await list.waitFor();
    return list.innerText();
  }

  /**
   * The texts on the History tab's timeline: one label per activity, timer and update (with
   * its summary) among the axis' times. Read once `shownLabel` is drawn.
   */
  async timelineLabels(shownLabel: string): Promise<string[]> {
    const labels = this.page.locator('svg text');
    await labels.filter({ hasText: shownLabel }).first().waitFor();
    return (await labels.allTextContents()).map((text) => text.trim()).filter(Boolean);
  }
}
