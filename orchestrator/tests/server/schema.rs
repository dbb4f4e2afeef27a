//! The Postgres and SQLite migrations describe the same schema.

use crate::helpers::{Backend, fresh_database, open_store};
use parley_orchestrator::store::Store;
use sqlx::Row;
use std::collections::BTreeMap;

/// Per table: columns (name, type family, nullable), primary key, unique column sets, foreign
/// keys (column → table.column on delete), named indexes (name → columns).
#[derive(Debug, Default, PartialEq)]
struct Table {
    columns: Vec<(String, &'static str, bool)>,
    primary_key: Vec<String>,
    unique: Vec<Vec<String>>,
    foreign_keys: Vec<(String, String, String, String)>,
    indexes: BTreeMap<String, Vec<String>>,
}

/// Type families: the deliberate mapping between the two dialects.
fn family(declared: &str) -> &'static str {
    match declared.to_ascii_lowercase().as_str() {
        "text" => "text",
        "bigint" | "integer" => "integer",
        "boolean" => "boolean",
        other => panic!("column type {other:?} has no family: add it to the mapping"),
    }
}

async fn strings(store: &Store, sql: &str) -> Vec<Vec<String>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    r.try_get::<String, _>(i)
                        .or_else(|_| r.try_get::<i64, _>(i).map(|n| n.to_string()))
                        .expect("text or integer column")
                })
                .collect()
        })
        .collect()
}

async fn postgres_schema(store: &Store) -> BTreeMap<String, Table> {
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for c in strings(
        store,
        "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT), CAST(data_type AS TEXT), \
         CAST(is_nullable AS TEXT) FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations' \
         ORDER BY table_name, ordinal_position",
    )
    .await
    {
        tables.entry(c[0].clone()).or_default().columns.push((
            c[1].clone(),
            family(&c[2]),
            c[3] == "YES",
        ));
    }
    let mut uniques: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for c in strings(
        store,
        "SELECT CAST(tc.table_name AS TEXT), CAST(tc.constraint_type AS TEXT), \
         CAST(tc.constraint_name AS TEXT), CAST(k.column_name AS TEXT) \
         FROM information_schema.table_constraints tc \
         JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name \
         WHERE tc.table_schema = 'public' AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE') \
         AND tc.table_name <> '_sqlx_migrations' ORDER BY tc.constraint_name, k.ordinal_position",
    )
    .await
    {
        if c[1] == "PRIMARY KEY" {
            tables
                .entry(c[0].clone())
                .or_default()
                .primary_key
                .push(c[3].clone());
        } else {
            uniques
                .entry((c[0].clone(), c[2].clone()))
                .or_default()
                .push(c[3].clone());
        }
    }
    for ((table, _), cols) in uniques {
        let t = tables.entry(table).or_default();
        t.unique.push(cols);
        t.unique.sort();
    }
    for c in strings(
        store,
        "SELECT CAST(src.relname AS TEXT), CAST(a.attname AS TEXT), CAST(dst.relname AS TEXT), \
         CAST(b.attname AS TEXT), CAST(con.confdeltype AS TEXT) FROM pg_constraint con \
         JOIN pg_class src ON src.oid = con.conrelid JOIN pg_class dst ON dst.oid = con.confrelid \
         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1] \
         JOIN pg_attribute b ON b.attrelid = con.confrelid AND b.attnum = con.confkey[1] \
         WHERE con.contype = 'f'",
    )
    .await
    {
        let on_delete = match c[4].as_str() {
            "c" => "CASCADE",
            "n" => "SET NULL",
            "a" => "NO ACTION",
            "r" => "RESTRICT",
            other => panic!("unexpected confdeltype {other}"),
        };
        tables.entry(c[0].clone()).or_default().foreign_keys.push((
            c[1].clone(),
            c[2].clone(),
            c[3].clone(),
            on_delete.to_owned(),
        ));
    }
    for c in strings(
        store,
        "SELECT CAST(t.relname AS TEXT), CAST(i.relname AS TEXT), CAST(a.attname AS TEXT), \
         CASE WHEN x.indisunique THEN 'unique' ELSE '' END FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
         WHERE n.nspname = 'public' AND NOT x.indisprimary \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = x.indexrelid) \
         ORDER BY i.relname, k.ord",
    )
    .await
    {
        tables
            .entry(c[0].clone())
            .or_default()
            .indexes
            .entry(index_key(&c[1], c[3] == "unique"))
            .or_default()
            .push(c[2].clone());
    }
    for t in tables.values_mut() {
        t.foreign_keys.sort();
    }
    tables
}

async fn sqlite_schema(store: &Store) -> BTreeMap<String, Table> {
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    let names = strings(
        store,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .await;
    for n in names {
        let name = &n[0];
        let t = tables.entry(name.clone()).or_default();
        let mut pk: Vec<(i64, String)> = Vec::new();
        for c in strings(
            store,
            &format!(
                "SELECT name, type, \"notnull\", pk FROM pragma_table_info('{name}') ORDER BY cid"
            ),
        )
        .await
        {
            let is_pk: i64 = c[3].parse().expect("pk");
            // SQLite lets a primary key column be NULL unless declared NOT NULL; Postgres never.
            let nullable = c[2] == "0" && is_pk == 0;
            t.columns.push((c[0].clone(), family(&c[1]), nullable));
            if is_pk > 0 {
                pk.push((is_pk, c[0].clone()));
            }
        }
        pk.sort();
        t.primary_key = pk.into_iter().map(|(_, c)| c).collect();
        for idx in strings(
            store,
            &format!("SELECT name, \"unique\", origin FROM pragma_index_list('{name}')"),
        )
        .await
        {
            let cols: Vec<String> = strings(
                store,
                &format!(
                    "SELECT name FROM pragma_index_info('{}') ORDER BY seqno",
                    idx[0]
                ),
            )
            .await
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
            match idx[2].as_str() {
                "pk" => {}
                "u" => t.unique.push(cols),
                _ => {
                    t.indexes.insert(index_key(&idx[0], idx[1] == "1"), cols);
                }
            }
        }
        t.unique.sort();
        for fk in strings(
            store,
            &format!("SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list('{name}')"),
        )
        .await
        {
            t.foreign_keys
                .push((fk[0].clone(), fk[1].clone(), fk[2].clone(), fk[3].clone()));
        }
        t.foreign_keys.sort();
    }
    tables
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_sqlite_migrations_build_the_same_schema() {
    let (pg_url, _d1) = fresh_database(Backend::Postgres).await;
    let (lite_url, _d2) = fresh_database(Backend::Sqlite).await;
    let pg = open_store(&pg_url, _d1.path()).await;
    let lite = open_store(&lite_url, _d2.path()).await;
    let a = postgres_schema(&pg).await;
    let b = sqlite_schema(&lite).await;
    assert!(a.len() >= 8, "tables: {:?}", a.keys().collect::<Vec<_>>());
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "same tables"
    );
    for (name, table) in &a {
        assert_eq!(Some(table), b.get(name), "table {name}: postgres vs sqlite");
    }
    // Applying again is a no-op on both.
    open_store(&pg_url, _d1.path()).await;
    open_store(&lite_url, _d2.path()).await;
}

/// A named index as compared: its name, marked when it is unique.
fn index_key(name: &str, unique: bool) -> String {
    if unique {
        format!("{name} (unique)")
    } else {
        name.to_owned()
    }
}
