/**
 * The rehearsal's built-in dataset and damage, used when the repository's
 * richer fixtures (test/fixtures/rich-dataset.sql, damage.sql) are not next
 * to the bundle. Like those, both run as the local superuser connected to
 * the rehearsal's database, and create everything as application roles the
 * RDS-like master user is a member of.
 */

export const SAMPLE_SEED_SQL = `
\\set ON_ERROR_STOP on
CREATE ROLE shop_owner NOLOGIN;
CREATE ROLE shop_reader NOLOGIN;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT rolname FROM pg_roles WHERE rolcreaterole AND rolcanlogin AND NOT rolsuper LOOP
    EXECUTE format('GRANT shop_owner, shop_reader TO %I', r.rolname);
  END LOOP;
  EXECUTE format('ALTER DATABASE %I OWNER TO shop_owner', current_database());
  EXECUTE format('ALTER DATABASE %I SET work_mem TO %L', current_database(), '16MB');
END $$;
SET ROLE shop_owner;
CREATE SCHEMA sales;
CREATE TYPE sales.order_status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE sales.customers (
  id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  email text UNIQUE,
  tags text[],
  profile jsonb
);
CREATE TABLE sales.orders (
  id bigserial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES sales.customers (id),
  status sales.order_status NOT NULL DEFAULT 'new',
  total numeric(12, 2) NOT NULL,
  placed_at timestamptz NOT NULL
);
COMMENT ON TABLE sales.orders IS 'one row per order';
CREATE TABLE sales."Audit Log" (id serial PRIMARY KEY, "What" text, payload bytea);
INSERT INTO sales.customers (name, email, tags, profile)
  SELECT 'customer ' || g, 'c' || g || '@example.com', ARRAY['t' || (g % 7)], jsonb_build_object('tier', g % 3, 'since', 2000 + g % 25)
    FROM generate_series(1, 2000) g;
INSERT INTO sales.orders (customer_id, status, total, placed_at)
  SELECT 1 + g % 2000, (ARRAY['new', 'paid', 'shipped'])[1 + g % 3]::sales.order_status, (g % 997) + 0.99, timestamptz '2026-01-01' + g * interval '1 minute'
    FROM generate_series(1, 20000) g;
INSERT INTO sales."Audit Log" ("What", payload) SELECT 'event ' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 500) g;
CREATE VIEW sales.revenue AS SELECT status, sum(total) AS total FROM sales.orders GROUP BY status;
CREATE MATERIALIZED VIEW sales.daily AS SELECT date_trunc('day', placed_at) AS day, count(*) AS orders FROM sales.orders GROUP BY 1;
CREATE FUNCTION sales.forbid_negative() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.total < 0 THEN RAISE EXCEPTION 'negative total'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER orders_forbid_negative BEFORE INSERT OR UPDATE ON sales.orders FOR EACH ROW EXECUTE FUNCTION sales.forbid_negative();
GRANT USAGE ON SCHEMA sales TO shop_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA sales TO shop_reader;
SELECT lo_from_bytea(0, convert_to('a large object kept since the restore time', 'UTF8')) IS NOT NULL AS large_object;
RESET ROLE;
CREATE DATABASE inventory OWNER shop_owner;
\\connect inventory
SET ROLE shop_owner;
CREATE TABLE items (sku text PRIMARY KEY, quantity int NOT NULL);
INSERT INTO items SELECT 'sku-' || g, g % 50 FROM generate_series(1, 1000) g;
`;

/** After the restore time: the kinds of mistakes a recovery is for, plus writes that must survive in the kept copy. */
export const SAMPLE_DAMAGE_SQL = `
\\set ON_ERROR_STOP on
SET ROLE shop_owner;
DROP TABLE sales."Audit Log";
DELETE FROM sales.orders WHERE id % 3 = 0;
UPDATE sales.customers SET email = NULL, profile = '{"corrupted": true}' WHERE id % 5 = 0;
CREATE TABLE sales.created_after_restore_time (x int);
INSERT INTO sales.orders (customer_id, total, placed_at) VALUES (1, 42.00, now());
RESET ROLE;
DROP DATABASE inventory;
CREATE DATABASE created_after_restore_time;
`;
