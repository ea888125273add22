-- The transactional outbox (same table as campus_common::outbox::DDL).
CREATE TABLE IF NOT EXISTS outbox (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  topic VARCHAR(249) NOT NULL,
  message_key VARCHAR(255) NOT NULL,
  payload MEDIUMBLOB NOT NULL,
  headers JSON NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  sent_at DATETIME(6) NULL,
  PRIMARY KEY (id),
  KEY outbox_pending (sent_at, id)
) ENGINE=InnoDB;
