#!/bin/bash
# Oracle for sqlite-repair: re-point orders to the smallest id per lower(email), delete the
# others, add a case-insensitive unique index, then the 2024 report.
set -euo pipefail
cd /app
sqlite3 shop.db <<'SQL'
BEGIN;
CREATE TEMP TABLE keep AS
    SELECT c.id AS id, (SELECT MIN(k.id) FROM customers k WHERE lower(k.email) = lower(c.email)) AS keep_id
    FROM customers c;
UPDATE orders SET customer_id = (SELECT keep_id FROM keep WHERE keep.id = orders.customer_id);
DELETE FROM customers WHERE id IN (SELECT id FROM keep WHERE id <> keep_id);
CREATE UNIQUE INDEX customers_email_nocase ON customers(email COLLATE NOCASE);
COMMIT;
SQL
sqlite3 -csv -header shop.db "
    SELECT lower(c.email) AS email, COUNT(*) AS orders, printf('%.2f', SUM(o.amount_cents) / 100.0) AS total
    FROM orders o JOIN customers c ON c.id = o.customer_id
    WHERE o.placed_on >= '2024-01-01' AND o.placed_on < '2025-01-01'
    GROUP BY c.id ORDER BY SUM(o.amount_cents) DESC, email" > report.csv
