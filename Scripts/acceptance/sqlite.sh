#!/usr/bin/env bash
# sqlite3 in the mount: a database in the default rollback-journal mode (journal files created,
# fsynced and deleted per transaction), 10 transactions of 1000 rows each, then
# PRAGMA integrity_check and the row count, through the mount and in the backing folder.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
acceptance_setup sqlite "$@"

db="$WORK/test.db"
sql() { sqlite3 -bail "$1" "$2" 2>&1 || fail "sqlite3 failed on $1: $2"; }
step "create table" sqlite3 -bail "$db" 'CREATE TABLE t(id INTEGER PRIMARY KEY, batch INTEGER, body TEXT); CREATE INDEX t_batch ON t(batch);'
for batch in $(seq 1 10); do
  step "transaction $batch" sqlite3 -bail "$db" "BEGIN;
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
    INSERT INTO t(batch, body) SELECT $batch, printf('row %d of batch %d %s', i, $batch, hex(randomblob(40))) FROM n;
    COMMIT;"
done
# A rolled-back transaction leaves nothing behind.
step "rolled-back transaction" sqlite3 -bail "$db" "BEGIN; DELETE FROM t; ROLLBACK;"
sync_backing
for view in "$db" "$WORK_BACKING/test.db"; do
  result=$(sql "$view" 'PRAGMA integrity_check;')
  [ "$result" = ok ] || fail "integrity_check of $view: $result"
  result=$(sql "$view" 'SELECT count(*), count(DISTINCT batch), sum(batch) FROM t;')
  [ "$result" = "10000|10|55000" ] || fail "$view holds count|batches|sum $result, not 10000|10|55000"
done
[ ! -e "$WORK/test.db-journal" ] || fail "the rollback journal is left behind"
echo "sqlite: ok"
