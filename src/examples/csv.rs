//! The labels file format: the header, the rows parsed with every problem located, loaded from
//! disk, and rows written back in a file's own columns (so what `labels check` accepts is what
//! the prompt renders and what `labels add-from-reviews` appends).

use std::{collections::BTreeMap, path::Path};

use super::{Example, HEADER, OPTIONAL_COLUMNS, Problem, SENTIMENTS};
use crate::domain::{Route, Severity, Tier};

/// The rows of a CSV file after its header, for checking row by row: the labels files and the
/// review import read their files the same way.
pub struct CsvRows<'t> {
    file: String,
    text: &'t str,
    records: csv::StringRecordsIntoIter<&'t [u8]>,
}

/// The line of `text` that byte `pos` is on, 1-based, as an editor shows it: one more than the
/// newlines before it, so a quoted field that spans lines moves the rows after it down (the
/// CSV reader's own line counter counts records, not lines). One convention for every file
/// escalator reads: `labels check` and `review import` locate problems the same way.
fn line_at(text: &str, pos: Option<&csv::Position>) -> u64 {
    let Some(pos) = pos else { return 0 };
    let mut end = usize::try_from(pos.byte()).map_or(text.len(), |b| b.min(text.len()));
    // The reader's position of a record is where it started reading it, which can be the end
    // of the line before (the `\n` of a `\r\n`) or blank lines it skips: the record itself
    // starts after them.
    let bytes = text.as_bytes();
    while end < bytes.len() && matches!(bytes[end], b'\r' | b'\n') {
        end += 1;
    }
    let newlines = bytes[..end].iter().filter(|&&b| b == b'\n').count();
    u64::try_from(newlines).map_or(u64::MAX, |n| n + 1)
}

/// Reads the header of the CSV `text` (named `file` in problems).
///
/// # Errors
/// When the file is empty or its header cannot be read.
pub fn read_csv<'t>(
    file: &str,
    text: &'t str,
) -> Result<(csv::StringRecord, CsvRows<'t>), Problem> {
    let mut records = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
        .into_records();
    match records.next() {
        None => Err(Problem::at(file, 0, 0, "file is empty")),
        Some(Err(e)) => Err(Problem::at(file, 1, 0, format!("unreadable header: {e}"))),
        Some(Ok(header)) => Ok((
            header,
            CsvRows {
                file: file.to_owned(),
                text,
                records,
            },
        )),
    }
}

impl<'t> CsvRows<'t> {
    /// Each row with the line it starts on, or the problem that it is malformed CSV or does not
    /// have `width` fields.
    pub fn of_width(
        self,
        width: usize,
    ) -> impl Iterator<Item = Result<(u64, csv::StringRecord), Problem>> + 't {
        let (file, text) = (self.file, self.text);
        self.records.map(move |record| {
            let record = record.map_err(|e| {
                let line = line_at(text, e.position());
                Problem::at(&file, line, 0, format!("malformed CSV: {e}"))
            })?;
            let line = line_at(text, record.position());
            if record.len() == width {
                Ok((line, record))
            } else {
                let message = format!("has {} fields, expected {width}", record.len());
                Err(Problem::at(&file, line, 0, message))
            }
        })
    }
}

/// Parses a labels file's text, collecting every problem instead of stopping at the first.
///
/// # Errors
/// The list of problems when any row is malformed; a file with problems yields no examples.
pub fn parse(file: &str, text: &str) -> Result<Vec<Example>, Vec<Problem>> {
    let problem =
        |line: u64, column: usize, message: String| Problem::at(file, line, column, message);
    let mut problems = Vec::new();
    let (header, rows) = read_csv(file, text).map_err(|p| vec![p])?;
    let got: Vec<&str> = header.iter().collect();
    let optional = header_columns(&got).map_err(|why| {
        vec![problem(
            1,
            0,
            format!(
                "header must be exactly `{}` (then any of the optional columns {}), found `{}`{why}",
                HEADER.join(","),
                OPTIONAL_COLUMNS.join(", "),
                got.join(",")
            ),
        )]
    })?;
    let mut examples = Vec::new();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for row in rows.of_width(HEADER.len() + optional.len()) {
        let (line, record) = match row {
            Ok(row) => row,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        let mut row_ok = true;
        for (i, name) in HEADER.iter().enumerate() {
            if record[i].trim().is_empty() {
                problems.push(problem(line, i + 1, format!("{name} is empty")));
                row_ok = false;
            }
        }
        let tier = Tier::parse("tier", &record[3]);
        let severity = Severity::parse("severity", &record[4]);
        let route = Route::parse("route", &record[5]);
        for (col, res) in [
            (4, tier.as_ref().err()),
            (5, severity.as_ref().err()),
            (6, route.as_ref().err()),
        ] {
            if let Some(e) = res {
                if !record[col - 1].trim().is_empty() {
                    problems.push(problem(line, col, e.to_string()));
                }
                row_ok = false;
            }
        }
        if let (Ok(s), Ok(r)) = (&severity, &route) {
            if s.route() != *r {
                problems.push(problem(
                    line,
                    6,
                    format!(
                        "route {r} is inconsistent with severity {s} (expected {})",
                        s.route()
                    ),
                ));
                row_ok = false;
            }
        }
        let id = record[0].trim().to_owned();
        if !id.is_empty() {
            if let Some(first) = seen.insert(id.clone(), line) {
                problems.push(problem(
                    line,
                    1,
                    format!("duplicate ticket_id {id:?} (first on line {first})"),
                ));
                row_ok = false;
            }
        }
        let mut extra = Example::default();
        for (i, name) in optional.iter().enumerate() {
            let column = HEADER.len() + i;
            if let Err(message) = set_optional(&mut extra, name, record[column].trim()) {
                problems.push(problem(line, column + 1, message));
                row_ok = false;
            }
        }
        if let (true, Ok(tier), Ok(severity), Ok(route)) = (row_ok, tier, severity, route) {
            examples.push(Example {
                ticket_id: id,
                subject: record[1].trim().to_owned(),
                first_message: record[2].trim().to_owned(),
                tier,
                severity,
                route,
                why: record[6].trim().to_owned(),
                line,
                ..extra
            });
        }
    }
    if problems.is_empty() {
        Ok(examples)
    } else {
        Err(problems)
    }
}

/// The optional columns of a header whose first columns are [`HEADER`], or why it is not one.
fn header_columns(got: &[&str]) -> Result<Vec<&'static str>, String> {
    if got.len() < HEADER.len() || got[..HEADER.len()] != HEADER {
        return Err(String::new());
    }
    let mut optional: Vec<&'static str> = Vec::new();
    for name in &got[HEADER.len()..] {
        match OPTIONAL_COLUMNS.iter().find(|c| *c == name) {
            Some(c) if optional.contains(c) => return Err(format!(" (`{c}` appears twice)")),
            Some(c) => optional.push(c),
            None => return Err(format!(" (`{name}` is not a column)")),
        }
    }
    Ok(optional)
}

/// Parses one optional cell into `e`; an empty cell leaves the default (unknown).
fn set_optional(e: &mut Example, name: &str, cell: &str) -> Result<(), String> {
    if cell.is_empty() {
        return Ok(());
    }
    match name {
        "arr_usd" => match cell.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => e.arr_usd = Some(v),
            _ => return Err(format!("invalid arr_usd: {cell:?} is not a number >= 0")),
        },
        "repeat_24h" => match cell.parse::<u32>() {
            Ok(n) => e.repeat_24h = Some(n),
            Err(_) => {
                return Err(format!(
                    "invalid repeat_24h: {cell:?} is not a whole number >= 0"
                ));
            }
        },
        "topic" => {
            let slug = cell
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !slug {
                return Err(format!(
                    "invalid topic: {cell:?} must be one lowercase word (a-z, 0-9, - and _)"
                ));
            }
            e.topic = Some(cell.to_owned());
        }
        "sentiment" => {
            if !SENTIMENTS.contains(&cell) {
                return Err(format!(
                    "invalid sentiment: {cell:?} is not one of {}",
                    SENTIMENTS.join(", ")
                ));
            }
            e.sentiment = Some(cell.to_owned());
        }
        _ => {}
    }
    Ok(())
}

/// One row for `e` in a file whose header is `columns` (as [`columns`] returns it), CSV-quoted
/// and ending in a newline: what an appender writes so a file keeps one shape.
pub fn to_csv_row(e: &Example, columns: &[&str]) -> String {
    let fields: Vec<String> = columns
        .iter()
        .map(|c| match *c {
            "ticket_id" => e.ticket_id.clone(),
            "subject" => e.subject.clone(),
            "first_message" => e.first_message.clone(),
            "tier" => e.tier.as_str().to_owned(),
            "severity" => e.severity.as_str().to_owned(),
            "route" => e.route.as_str().to_owned(),
            "why_this_label" => e.why.clone(),
            "arr_usd" => e.arr_usd.map(|v| v.to_string()).unwrap_or_default(),
            "repeat_24h" => e.repeat_24h.map(|v| v.to_string()).unwrap_or_default(),
            "topic" => e.topic.clone().unwrap_or_default(),
            "sentiment" => e.sentiment.clone().unwrap_or_default(),
            _ => String::new(),
        })
        .collect();
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing into a Vec cannot fail, and every field is valid UTF-8.
    let _ = w.write_record(&fields);
    w.into_inner()
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

/// The columns of a labels file's header: [`HEADER`], then the optional ones it has, in order.
///
/// # Errors
/// The same problem [`parse`] reports for a bad header.
pub fn columns(file: &str, text: &str) -> Result<Vec<&'static str>, Problem> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let bad = |message: String| Problem {
        file: file.to_owned(),
        line: 1,
        column: 0,
        message,
    };
    let header = match reader.records().next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(bad(format!("unreadable header: {e}"))),
        None => return Err(bad("file is empty".into())),
    };
    let got: Vec<&str> = header.iter().collect();
    let optional =
        header_columns(&got).map_err(|why| bad(format!("header is not a labels header{why}")))?;
    Ok(HEADER.iter().copied().chain(optional).collect())
}

/// Reads and parses a labels file from disk.
///
/// # Errors
/// A single problem when the file cannot be read, or the parse problems.
pub fn load(path: &Path) -> Result<Vec<Example>, Vec<Problem>> {
    let file = path.display().to_string();
    let text = read(path).map_err(|p| vec![p])?;
    parse(&file, &text)
}

/// A labels file's text, or the problem naming why it cannot be read.
pub(super) fn read(path: &Path) -> Result<String, Problem> {
    std::fs::read_to_string(path).map_err(|e| Problem {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })
}

/// Renders examples as rows of a labels file with `columns` (no header; see [`columns`]),
/// quoted where the CSV format needs it, so a tool that adds rows (`escalator labels
/// add-from-reviews`) writes what [`parse`] reads, optional columns included.
pub fn render_rows(examples: &[Example], columns: &[&str]) -> String {
    examples.iter().map(|e| to_csv_row(e, columns)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    /// Every row is located by the file's line an editor shows: the header is line 1, the
    /// first row line 2, and a quoted field that spans lines (CRLF too) moves the rows after
    /// it down by the lines it spans.
    #[test]
    fn rows_are_located_by_the_files_line() {
        let text = "a,b\r\n\"one\r\ntwo\nthree\",x\r\nshort\n\n\"é, 🔥\",y\n";
        let (_, rows) = read_csv("f.csv", text).unwrap();
        let got: Vec<Result<u64, String>> = rows
            .of_width(2)
            .map(|r| r.map(|(line, _)| line).map_err(|p| p.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                Ok(2),
                Err("f.csv:5: has 1 fields, expected 2".to_owned()),
                Ok(7),
            ]
        );
    }

    #[test]
    fn rendered_rows_parse_back() {
        let e = Example {
            ticket_id: "th_1".into(),
            subject: "Can’t log in, \"urgent\"".into(),
            first_message: "Line one,\nline two 🔥".into(),
            tier: Tier::Pro,
            severity: Severity::Urgent,
            route: Route::Human,
            why: "Reviewer: login blocked".into(),
            // The line it is read back from.
            line: 2,
            ..Example::default()
        };
        let text = format!(
            "{}\n{}",
            HEADER.join(","),
            render_rows(std::slice::from_ref(&e), &HEADER)
        );
        assert_eq!(parse("f.csv", &text).unwrap(), vec![e]);
    }

    #[test]
    fn optional_columns_parse_in_any_order_and_old_files_stay_valid() {
        let old = parse("old.csv", &format!("{HEAD}A-1,s,m,pro,routine,bot,w\n")).unwrap();
        assert_eq!(old[0].arr_usd, None);
        assert_eq!(old[0].repeat_24h, None);
        assert_eq!(old[0].line, 2);
        let text = "ticket_id,subject,first_message,tier,severity,route,why_this_label,sentiment,repeat_24h,arr_usd\n\
                    A-1,s,m,pro,urgent,human,w,angry,2,12000.5\n\
                    A-2,s2,m2,pro,routine,bot,w,,,\n";
        let rows = parse("f.csv", text).unwrap();
        assert_eq!(rows[0].sentiment.as_deref(), Some("angry"));
        assert_eq!(rows[0].repeat_24h, Some(2));
        assert_eq!(rows[0].arr_usd, Some(12000.5));
        assert_eq!(rows[0].topic, None);
        assert_eq!((rows[1].arr_usd, rows[1].repeat_24h), (None, None));

        let bad = "ticket_id,subject,first_message,tier,severity,route,why_this_label,arr_usd,repeat_24h,topic,sentiment\n\
                   A-1,s,m,pro,urgent,human,w,-5,two,Billing Stuff,furious\n";
        let p: Vec<String> = parse("f.csv", bad)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            p,
            vec![
                "f.csv:2:8: invalid arr_usd: \"-5\" is not a number >= 0",
                "f.csv:2:9: invalid repeat_24h: \"two\" is not a whole number >= 0",
                "f.csv:2:10: invalid topic: \"Billing Stuff\" must be one lowercase word (a-z, 0-9, - and _)",
                "f.csv:2:11: invalid sentiment: \"furious\" is not one of positive, neutral, negative, angry",
            ]
        );
        for header in [
            "ticket_id,subject,first_message,tier,severity,route,why_this_label,colour",
            "ticket_id,subject,first_message,tier,severity,route,why_this_label,topic,topic",
        ] {
            let p = parse("f.csv", &format!("{header}\n")).unwrap_err();
            assert!(
                p[0].message.starts_with("header must be exactly"),
                "{}",
                p[0]
            );
        }
    }

    #[test]
    fn a_row_written_for_a_header_parses_back_the_same() {
        let text =
            "ticket_id,subject,first_message,tier,severity,route,why_this_label,repeat_24h,topic\n";
        let cols = columns("f.csv", text).unwrap();
        assert_eq!(cols.len(), 9);
        let e = Example {
            ticket_id: "R-1".into(),
            subject: "Invoice, “wrong”".into(),
            first_message: "Line one\nline two, with a comma and \"quotes\" 🙈".into(),
            tier: Tier::Pro,
            severity: Severity::Urgent,
            route: Route::Human,
            why: "Billing dispute: no amount.".into(),
            repeat_24h: Some(1),
            topic: Some("billing".into()),
            ..Example::default()
        };
        let written = format!("{text}{}", to_csv_row(&e, &cols));
        let back = parse("f.csv", &written).unwrap();
        assert_eq!(back, vec![Example { line: 2, ..e }]);
    }

    #[test]
    fn problems_are_located_by_line_and_column() {
        let text = format!(
            "{HEAD}A-1,s,m,pro,routine,bot,w\nA-2,s2,m2,gold,urgent,bot,w\nA-1,s3,,pro,urgent,human,w\n"
        );
        let problems: Vec<String> = parse("f.csv", &text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            vec![
                "f.csv:3:4: invalid tier: \"gold\" is not one of free, pro, enterprise",
                "f.csv:3:6: route bot is inconsistent with severity urgent (expected human)",
                "f.csv:4:3: first_message is empty",
                "f.csv:4:1: duplicate ticket_id \"A-1\" (first on line 2)",
            ]
        );
    }

    #[test]
    fn wrong_header_and_field_count_are_reported() {
        let p = parse("f.csv", "id,subject\n").unwrap_err();
        assert!(
            p[0].to_string()
                .starts_with("f.csv:1: header must be exactly")
        );
        let p = parse("f.csv", &format!("{HEAD}A-1,s,m\n")).unwrap_err();
        assert_eq!(p[0].to_string(), "f.csv:2: has 3 fields, expected 7");
    }
}
