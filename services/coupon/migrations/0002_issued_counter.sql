-- The limit, enforced by MySQL too: `issued` counts the event's coupon rows. The worker locks the
-- event row, inserts only as many new coupons as `issue_limit - issued` allows and adds them to
-- `issued` in the same transaction, so a replayed topic, an offset reset or a record older than
-- the Redis keys can never take an event past its limit.
ALTER TABLE coupon_events ADD COLUMN IF NOT EXISTS issued INT NOT NULL DEFAULT 0;
UPDATE coupon_events e SET issued = (SELECT COUNT(*) FROM coupons c WHERE c.coupon_event_id = e.id);
ALTER TABLE coupon_events ADD CONSTRAINT ck_coupon_events_issued CHECK (issued >= 0 AND issued <= issue_limit);
