//! The plan PostgreSQL chooses for the store's List query (the statement
//! `postgres-store` prepares, not a copy), captured with psql from the
//! stack's database: EXPLAIN ANALYZE at the start, the middle and near the
//! end of the table, and the generic plan a long-lived prepared statement
//! may switch to. A page must cost O(page) wherever it starts: an index
//! finds the position and the scan reads about a page of rows.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use postgres_store::store::LIST_PAGE_SQL;
use serde_json::{Value, json};

use crate::load::Error;

/// The rows one List page of 20 fetches (the store asks for one more).
pub const PAGE_ROWS: u64 = 21;

/// The customers' resource kind in the records table.
const KIND: &str = "cus";

/// The port of the PostgreSQL whose socket is in `dir` (`.s.PGSQL.<port>`):
/// the stack's state says where its database listens, so the port is not
/// repeated here.
pub fn socket_port(dir: &Path) -> Result<u16, Error> {
    std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .find_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_prefix(".s.PGSQL.")?.parse().ok()
        })
        .ok_or_else(|| format!("no PostgreSQL socket in {}", dir.display()).into())
}

/// The psql script: the row count, then the store's statement prepared
/// and explained after `afters` (one EXPLAIN ANALYZE each), then its
/// generic plan. Sections are separated by lines `-- <name>` (psql \echo).
pub fn script(afters: &[(&str, u64)]) -> String {
    let mut sql = format!(
        "\\echo '-- rows'\nSELECT count(*) FROM records WHERE kind = '{KIND}';\n\
         PREPARE page(text, bigint, bigint) AS {LIST_PAGE_SQL};\n"
    );
    for (label, after) in afters {
        sql.push_str(&format!(
            "\\echo '-- {label}'\nEXPLAIN (ANALYZE, BUFFERS) EXECUTE page('{KIND}', {after}, {PAGE_ROWS});\n"
        ));
    }
    sql.push_str(&format!(
        "SET plan_cache_mode = force_generic_plan;\n\\echo '-- generic'\n\
         EXPLAIN EXECUTE page('{KIND}', 0, {PAGE_ROWS});\n"
    ));
    sql
}

/// psql's output split into its `-- name` sections.
pub fn sections(output: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in output.lines() {
        if let Some(name) = line.strip_prefix("-- ") {
            out.push((name.trim().to_owned(), String::new()));
        } else if let Some((_, text)) = out.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out
}

/// What a plan says about the cost of a page: the index it uses, the rows
/// its scan read (EXPLAIN ANALYZE's `actual ... rows=` of the innermost
/// scan), the shared buffers it touched. A page costs O(page) when an
/// index finds the position and the scan reads about a page (at most two:
/// near the end a plan may sort the few rows left); a plan without actual
/// rows (the generic one) must be an index scan without a sort.
pub fn assess(plan: &str) -> Value {
    let index = plan.lines().find_map(|l| {
        let rest = l
            .split("Index Scan using ")
            .nth(1)
            .or_else(|| l.split("Index Only Scan using ").nth(1))
            .or_else(|| l.split("Bitmap Index Scan on ").nth(1))?;
        rest.split_whitespace().next().map(str::to_owned)
    });
    let scan_rows: Option<u64> = plan
        .lines()
        .rfind(|l| l.contains("Scan") && l.contains("(actual "))
        .and_then(|l| {
            let actual = l.split("(actual ").nth(1)?;
            actual
                .split("rows=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
    let buffers: Option<u64> = plan
        .lines()
        .find_map(|l| l.trim().strip_prefix("Buffers: shared hit="))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok());
    let execution_ms = plan
        .lines()
        .find_map(|l| l.trim().strip_prefix("Execution Time: "))
        .and_then(|rest| rest.trim_end_matches(" ms").parse::<f64>().ok());
    let o_page = index.is_some()
        && !plan.contains("Seq Scan")
        && match scan_rows {
            Some(rows) => rows <= 2 * PAGE_ROWS,
            None => !plan.contains("Sort"),
        };
    json!({
        "index": index,
        "scan_rows": scan_rows,
        "o_page": o_page,
        "shared_hit_buffers": buffers,
        "execution_ms": execution_ms,
    })
}

/// EXPLAIN the store's List query on the database whose socket is in
/// `socket_dir`, for pages after each of `afters` (label, seq).
pub fn capture(psql: &Path, socket_dir: &Path, afters: &[(&str, u64)]) -> Result<Value, Error> {
    let port = socket_port(socket_dir)?;
    // On stdin: `--command` takes SQL or one backslash command, not both.
    let mut child = Command::new(psql)
        .arg("--no-psqlrc")
        .arg("--quiet")
        .args(["--tuples-only", "--no-align", "-v", "ON_ERROR_STOP=1"])
        .arg("--host")
        .arg(socket_dir)
        .args(["--port", &port.to_string(), "--username", "postgres"])
        .args(["--dbname", "postgres", "--file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", psql.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script(afters).as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err(format!(
            "psql: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let sections = sections(&text);
    let rows: u64 = sections
        .iter()
        .find(|(name, _)| name == "rows")
        .and_then(|(_, t)| t.trim().parse().ok())
        .ok_or_else(|| format!("psql: no row count in {text}"))?;
    let mut plans = serde_json::Map::new();
    for (name, plan) in sections.iter().filter(|(name, _)| name != "rows") {
        let after = afters.iter().find(|(l, _)| l == name).map(|(_, a)| *a);
        plans.insert(
            name.clone(),
            json!({"after_seq": after, "plan": plan.trim_end(), "assessment": assess(plan)}),
        );
    }
    Ok(json!({"query": LIST_PAGE_SQL, "rows": rows, "page_rows": PAGE_ROWS, "plans": plans}))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX_PLAN: &str = " Limit  (cost=0.42..2.61 rows=21 width=120) (actual time=0.020..0.031 rows=21 loops=1)
   Buffers: shared hit=4
   ->  Index Scan using records_pkey on records  (cost=0.42..10405.42 rows=100005 width=120) (actual time=0.019..0.027 rows=21 loops=1)
         Index Cond: ((kind = 'cus'::text) AND (seq > 50000))
         Buffers: shared hit=4
 Planning Time: 0.100 ms
 Execution Time: 0.052 ms
";

    #[test]
    fn an_index_range_scan_is_recognised_with_its_rows_buffers_and_time() {
        let a = assess(INDEX_PLAN);
        assert_eq!(a["index"], "records_pkey");
        assert_eq!(a["scan_rows"], 21);
        assert_eq!(a["o_page"], true);
        assert_eq!(a["shared_hit_buffers"], 4);
        assert_eq!(a["execution_ms"], 0.052);
        let generic = "Limit\n  ->  Index Scan using records_pkey on records\n";
        assert_eq!(assess(generic)["o_page"], true);
        assert_eq!(assess(generic)["shared_hit_buffers"], Value::Null);
    }

    #[test]
    fn a_scan_of_everything_after_the_position_is_not_o_page() {
        // What the planner chose on 1005 rows without statistics.
        let bitmap = "Limit  (actual time=0.516..0.519 rows=21 loops=1)
  ->  Sort  (actual time=0.514..0.516 rows=21 loops=1)
        ->  Bitmap Heap Scan on records  (actual time=0.091..0.253 rows=1005 loops=1)
              ->  Bitmap Index Scan on records_pkey  (actual time=0.082..0.082 rows=1005 loops=1)
";
        let a = assess(bitmap);
        assert_eq!(a["index"], "records_pkey");
        assert_eq!(a["scan_rows"], 1005);
        assert_eq!(a["o_page"], false);
        // The same shape over the few rows left at the end is a page.
        assert_eq!(
            assess(&bitmap.replace("rows=1005", "rows=25"))["o_page"],
            true
        );
        let seq = " Limit\n   ->  Sort\n         Sort Key: seq\n         ->  Seq Scan on records\n";
        assert_eq!(assess(seq)["index"], Value::Null);
        assert_eq!(assess(seq)["o_page"], false);
        // A generic plan that sorts would read everything first.
        assert_eq!(
            assess("Limit\n  ->  Sort\n    ->  Index Scan using records_pkey on records\n")["o_page"],
            false
        );
    }

    #[test]
    fn the_script_explains_the_stores_own_statement_at_each_position() {
        let sql = script(&[("start", 0), ("end", 99_005)]);
        assert!(sql.contains(&format!("AS {LIST_PAGE_SQL};")), "{sql}");
        assert!(sql.contains("EXECUTE page('cus', 99005, 21)"), "{sql}");
        assert!(sql.contains("force_generic_plan"), "{sql}");
    }

    #[test]
    fn psql_output_splits_into_sections() {
        let out = "-- rows\n100005\n-- start\n Limit\n   -> Index Scan\n-- generic\n Limit\n";
        let s = sections(out);
        let names: Vec<&str> = s.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["rows", "start", "generic"]);
        assert_eq!(s[1].1, " Limit\n   -> Index Scan\n");
    }

    #[test]
    fn the_port_comes_from_the_socket_file() {
        let dir = std::env::temp_dir().join(format!("bench-explain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(socket_port(&dir).is_err());
        std::fs::write(dir.join(".s.PGSQL.55432.lock"), "").unwrap();
        std::fs::write(dir.join(".s.PGSQL.55432"), "").unwrap();
        assert_eq!(socket_port(&dir).unwrap(), 55432);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
