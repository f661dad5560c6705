-- Racing orders of one customer of one channel are admitted and held one at a time, so together
-- they never pass a limit. (A two-key advisory lock never collides with Prisma Migrate's one-key
-- lock.) Taken before any order or product row lock, by admit_order, hold_order_in_channel and
-- hold_order alike (re-entrant within a transaction).

CREATE OR REPLACE FUNCTION public.lock_customer(p_channel text, p_customer_id text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  PERFORM pg_advisory_xact_lock(27, hashtext(p_channel || chr(31) || p_customer_id));
END
$function$;
