-- Coupon events (what may be issued, how many, when) and the coupons issued for them.
CREATE TABLE IF NOT EXISTS coupon_events (
    id                   BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name                 VARCHAR(200) NOT NULL,
    issue_limit          INT          NOT NULL,
    starts_at            DATETIME(3)  NOT NULL,
    ends_at              DATETIME(3)  NOT NULL,
    coupon_valid_seconds BIGINT       NOT NULL,
    created_at           DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    CONSTRAINT ck_coupon_events_limit CHECK (issue_limit > 0),
    CONSTRAINT ck_coupon_events_window CHECK (ends_at > starts_at),
    CONSTRAINT ck_coupon_events_validity CHECK (coupon_valid_seconds > 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- One coupon per (user, event): the worker inserts with this key and treats a duplicate as success.
-- `id` is the id of the issue request (UUID v7) the API answered with.
CREATE TABLE IF NOT EXISTS coupons (
    id              CHAR(36)    CHARACTER SET ascii NOT NULL PRIMARY KEY,
    user_id         BIGINT      NOT NULL,
    coupon_event_id BIGINT      NOT NULL,
    issued_at       DATETIME(3) NOT NULL,
    expires_at      DATETIME(3) NOT NULL,
    used_at         DATETIME(3) NULL,
    created_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY uq_coupons_user_event (user_id, coupon_event_id),
    KEY ix_coupons_event (coupon_event_id),
    CONSTRAINT fk_coupons_event FOREIGN KEY (coupon_event_id) REFERENCES coupon_events (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
