//! The hand-labelled example tickets: parse, check, summarise, and the hygiene of a file
//! (duplicates, conflicting labels, coverage of the definitions).
//!
//! The labels are the model's teacher (they are rendered into the prompt) and the yardstick of
//! `escalator eval`, so a bad row is an error with a file, line and column, never a skipped row.
//!
//! Over 450 lines: one file format (parse, every check with line and column, the summary, the
//! rendering back to CSV), so what `labels check` accepts is what the prompt renders.

use std::{collections::BTreeMap, fmt, path::Path};

use crate::{
    domain::{DomainError, RawTicket, Route, Severity, Source, Ticket, TicketContext, Tier},
    text,
};

/// The exact header every labels file starts with (the required columns, in this order).
pub const HEADER: [&str; 7] = [
    "ticket_id",
    "subject",
    "first_message",
    "tier",
    "severity",
    "route",
    "why_this_label",
];

/// Columns a file may add after [`HEADER`], each at most once, in any order. A file without them
/// is valid; an empty cell means "not known".
///
/// - `arr_usd`: the customer's ARR in USD (a number >= 0); rendered into the prompt's example
///   and passed to the classifier by `eval`.
/// - `repeat_24h`: the customer's other tickets in the 24 h before this one (a whole number);
///   rendered and passed like `arr_usd` (1 or more makes a ticket urgent at least).
/// - `topic`: one lowercase word (`billing`, `sso`); shown in the prompt's example and scored
///   by `eval` when it is one of the configured topics (`[labels] topics`); `labels check`
///   warns of one that is not ([`topic_findings`]).
/// - `sentiment`: one of [`SENTIMENTS`]; shown and scored likewise (`angry` as `negative`, the
///   classifier's scale having three values).
pub const OPTIONAL_COLUMNS: [&str; 4] = ["arr_usd", "repeat_24h", "topic", "sentiment"];

/// The values the `sentiment` column takes.
pub const SENTIMENTS: [&str; 4] = ["positive", "neutral", "negative", "angry"];

/// The training labels shipped with the binary (rendered into the prompt by default).
pub const EMBEDDED_LABELS: &str = include_str!("../labels/labels.csv");
/// The holdout set shipped with the binary.
pub const EMBEDDED_HOLDOUT: &str = include_str!("../labels/holdout.csv");
/// Tricky tickets the offline classifier once got wrong; the tests run it over every row.
pub const EMBEDDED_REGRESSIONS: &str = include_str!("../labels/regressions.csv");
/// Benign tickets carrying each clause's trigger words, all routine: what the offline rules'
/// guards are derived from (with the training labels); the tests keep every row routine.
pub const EMBEDDED_NEGATIVES: &str = include_str!("../labels/negatives.csv");

/// One labelled ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Unique within its file and across training/holdout.
    pub ticket_id: String,
    /// The subject line.
    pub subject: String,
    /// The customer's first message.
    pub first_message: String,
    /// The customer's plan.
    pub tier: Tier,
    /// The correct severity.
    pub severity: Severity,
    /// The correct route (always `severity.route()` in a checked file).
    pub route: Route,
    /// Why the labeller chose this, one sentence that starts with the name of the definition
    /// clause that decided (see [`CLAUSES`]), e.g. `Billing dispute over $1,000: …`.
    pub why: String,
    /// `arr_usd`, when the file has the column and the cell is not empty.
    pub arr_usd: Option<f64>,
    /// `repeat_24h`, when the file has the column and the cell is not empty.
    pub repeat_24h: Option<u32>,
    /// `topic`, when given.
    pub topic: Option<String>,
    /// `sentiment` (one of [`SENTIMENTS`]), when given.
    pub sentiment: Option<String>,
    /// The 1-based line the row starts on in its file (0 when it was not read from one).
    pub line: u64,
}

impl Example {
    /// The ticket the classifier sees for this row, as `eval` builds it: subject, first
    /// message, tier, ARR and the repeat count (0 when the file has none).
    ///
    /// # Errors
    /// When the row is not a valid ticket (e.g. a first message over the body limit).
    pub fn ticket_context(&self) -> Result<TicketContext, DomainError> {
        let raw = RawTicket {
            id: self.ticket_id.clone(),
            subject: self.subject.clone(),
            body: self.first_message.clone(),
            tier: self.tier.as_str().to_owned(),
            arr_usd: self.arr_usd,
            ..RawTicket::default()
        };
        Ok(TicketContext {
            ticket: Ticket::parse(Source::Api, raw, "")?,
            repeat_count_24h: self.repeat_24h.unwrap_or(0),
        })
    }
}

impl Default for Example {
    /// An empty routine row for a free customer, for building examples field by field.
    fn default() -> Self {
        Self {
            ticket_id: String::new(),
            subject: String::new(),
            first_message: String::new(),
            tier: Tier::Free,
            severity: Severity::Routine,
            route: Severity::Routine.route(),
            why: String::new(),
            arr_usd: None,
            repeat_24h: None,
            topic: None,
            sentiment: None,
            line: 0,
        }
    }
}

/// One problem in a labels file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as given.
    pub file: String,
    /// 1-based line; 0 when the problem is about the file as a whole.
    pub line: u64,
    /// 1-based column (field number); 0 when not about one field.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}", self.file, self.message),
            (l, 0) => write!(f, "{}:{l}: {}", self.file, self.message),
            (l, c) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
        }
    }
}

impl Problem {
    /// A problem at `line` and `column` of `file`.
    pub fn at(file: &str, line: u64, column: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// The rows of a CSV file after its header, for checking row by row: the labels files and the
/// review import read their files the same way.
pub struct CsvRows<'t> {
    file: String,
    records: csv::StringRecordsIntoIter<&'t [u8]>,
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
        let file = self.file;
        self.records.map(move |record| {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, csv::Position::line);
                Problem::at(&file, line, 0, format!("malformed CSV: {e}"))
            })?;
            let line = record.position().map_or(0, csv::Position::line);
            if record.len() == width {
                Ok((line, record))
            } else {
                let message = format!("has {} fields, expected {width}", record.len());
                Err(Problem::at(&file, line, 0, message))
            }
        })
    }
}

/// What the checker requires beyond well-formed rows.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Fewest rows accepted.
    pub min_rows: usize,
    /// Smallest share each severity must have (0 to skip), e.g. 0.25 for the training file.
    pub min_share: f64,
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

/// Checks parsed examples against `rules` and against another labels file (`other`), which must
/// share no ticket id, subject or first message with this one (a holdout that leaks into the
/// prompt measures nothing).
pub fn check(
    file: &str,
    examples: &[Example],
    rules: &Rules,
    other: Option<(&str, &[Example])>,
) -> Vec<Problem> {
    let whole = |message: String| Problem {
        file: file.to_owned(),
        line: 0,
        column: 0,
        message,
    };
    let mut problems = Vec::new();
    if examples.len() < rules.min_rows {
        problems.push(whole(format!(
            "has {} rows, at least {} are required",
            examples.len(),
            rules.min_rows
        )));
    }
    if rules.min_share > 0.0 && !examples.is_empty() {
        let summary = Summary::of(examples);
        for s in Severity::ALL {
            let n = summary.by_severity.get(s).copied().unwrap_or(0);
            #[allow(clippy::cast_precision_loss)]
            let share = n as f64 / examples.len() as f64;
            if share < rules.min_share {
                problems.push(whole(format!(
                    "severity {s} has {n} rows ({:.0}%), every bucket needs at least {:.0}%",
                    share * 100.0,
                    rules.min_share * 100.0
                )));
            }
        }
    }
    if let Some((other_file, other)) = other {
        // The matching key (`can’t` = `can't`, case-folded), so retyping a row does not hide it.
        let norm = |s: &str| {
            crate::text::fold(s)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        for e in examples {
            for o in other {
                let what = if e.ticket_id == o.ticket_id {
                    Some("ticket_id")
                } else if norm(&e.first_message) == norm(&o.first_message) {
                    Some("first_message")
                } else if norm(&e.subject) == norm(&o.subject) {
                    Some("subject")
                } else {
                    None
                };
                if let Some(what) = what {
                    problems.push(whole(format!(
                        "{} overlaps {other_file} row {} ({what} is the same)",
                        e.ticket_id, o.ticket_id
                    )));
                }
            }
        }
    }
    problems
}

/// Rows per severity and per tier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows in the file.
    pub rows: usize,
    /// Rows per severity.
    pub by_severity: BTreeMap<Severity, usize>,
    /// Rows per tier.
    pub by_tier: BTreeMap<Tier, usize>,
}

impl Summary {
    /// Counts `examples`.
    pub fn of(examples: &[Example]) -> Self {
        let mut s = Summary {
            rows: examples.len(),
            ..Summary::default()
        };
        for e in examples {
            *s.by_severity.entry(e.severity).or_default() += 1;
            *s.by_tier.entry(e.tier).or_default() += 1;
        }
        s
    }
}

impl Summary {
    /// The share of rows with severity `s`, 0..=1 (0 for an empty file).
    pub fn share(&self, s: Severity) -> f64 {
        let n = self.by_severity.get(&s).copied().unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        if self.rows == 0 {
            0.0
        } else {
            n as f64 / self.rows as f64
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} rows", self.rows)?;
        writeln!(f, "  severity   rows  share")?;
        for s in Severity::ALL {
            let n = self.by_severity.get(s).copied().unwrap_or(0);
            #[allow(clippy::cast_precision_loss)]
            let share = if self.rows == 0 {
                0.0
            } else {
                n as f64 * 100.0 / self.rows as f64
            };
            writeln!(f, "  {:<10} {n:>4}  {share:>4.0}%", s.as_str())?;
        }
        writeln!(f, "  tier       rows")?;
        for t in Tier::ALL {
            let n = self.by_tier.get(t).copied().unwrap_or(0);
            writeln!(f, "  {:<10} {n:>4}", t.as_str())?;
        }
        Ok(())
    }
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

// ---------------------------------------------------------------------------------------------
// Hygiene: duplicates, conflicting labels, coverage of the definitions.

/// How bad a finding of [`hygiene`] or [`Coverage::findings`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Worth a look; `labels check --strict` fails on it.
    Warning,
    /// The file is wrong; `labels check` fails.
    Error,
}

/// A located problem with its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub level: Level,
    /// Where and what.
    pub problem: Problem,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Level::Error => write!(f, "{}", self.problem),
            Level::Warning => {
                let p = &self.problem;
                let at = Problem {
                    message: format!("warning: {}", p.message),
                    ..p.clone()
                };
                write!(f, "{at}")
            }
        }
    }
}

/// Characters per shingle for [`similarity`].
pub const SHINGLE_CHARS: usize = 5;

/// Two rows whose [`similarity`] is at least this are near-duplicates: with different labels
/// they conflict (an error), with the same label one is redundant (a warning). Retyping a row
/// with a few words changed scores 0.7 to 0.95; the shipped files' most similar distinct rows
/// score below 0.2.
pub const NEAR_DUPLICATE_SIMILARITY: f64 = 0.6;

/// The text a row is compared by: subject and first message, [`text::fold`]ed (case, quotes,
/// width), with every run of characters that are not letters or digits one space.
fn comparable_text(e: &Example) -> Vec<char> {
    let folded = text::fold(&format!("{} {}", e.subject, e.first_message));
    let mut out = Vec::with_capacity(folded.len());
    let mut space = true;
    for c in folded.chars() {
        if c == '\'' {
            continue;
        }
        if c.is_alphanumeric() {
            out.push(c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.last() == Some(&' ') {
        out.pop();
    }
    out
}

/// The sorted set of [`SHINGLE_CHARS`]-character shingles of a row (windows over characters,
/// never bytes), hashed. A text shorter than one shingle is its own single shingle.
fn shingles(e: &Example) -> Vec<u64> {
    use std::hash::{Hash as _, Hasher as _};
    let chars = comparable_text(e);
    let hash = |w: &[char]| {
        let mut h = std::hash::DefaultHasher::new();
        w.hash(&mut h);
        h.finish()
    };
    let mut out: Vec<u64> = if chars.len() <= SHINGLE_CHARS {
        vec![hash(&chars)]
    } else {
        chars.windows(SHINGLE_CHARS).map(hash).collect()
    };
    out.sort_unstable();
    out.dedup();
    out
}

fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let (mut i, mut j, mut both) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - both;
    #[allow(clippy::cast_precision_loss)]
    if union == 0 {
        0.0
    } else {
        both as f64 / union as f64
    }
}

/// How alike two rows read, 0..=1: the Jaccard index of their character shingles
/// ([`SHINGLE_CHARS`] characters of the folded subject and first message). Character shingles
/// rather than words, so a typo, a plural or another spelling of `can’t` barely moves it.
pub fn similarity(a: &Example, b: &Example) -> f64 {
    jaccard(&shingles(a), &shingles(b))
}

/// The exact-duplicate key: subject and first message with case, quotes and whitespace
/// normalised ([`text::fold`]).
fn exact_key(s: &str) -> String {
    text::fold(s)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether two rows' labels can be compared at all: the same text with another tier or another
/// repeat count may rightly have another label (enterprise is never routine; a repeat is urgent).
fn same_context(a: &Example, b: &Example) -> bool {
    a.tier == b.tier && a.repeat_24h.unwrap_or(0) == b.repeat_24h.unwrap_or(0)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn percent(sim: f64) -> u32 {
    (sim * 100.0).floor() as u32
}

/// Duplicates and conflicting labels within `examples`, and against `other` (the file the
/// examples must stay apart from, e.g. the holdout):
///
/// - the same subject and first message (case, whitespace and quotes normalised), tier and
///   repeat count twice in one file: error;
/// - near-duplicates ([`similarity`] >= [`NEAR_DUPLICATE_SIMILARITY`]) with the same tier and
///   repeat count but different severities: error, naming both lines (`conflicting labels:
///   line 12 and line 57 are 91% similar`);
/// - near-duplicates with the same severity: warning (one of them teaches nothing new; across
///   files, the holdout would measure memory).
///
/// Rows are compared pairwise (quadratic; a few thousand rows take well under a second).
pub fn hygiene(
    file: &str,
    examples: &[Example],
    other: Option<(&str, &[Example])>,
) -> Vec<Finding> {
    let at = |level: Level, line: u64, message: String| Finding {
        level,
        problem: Problem {
            file: file.to_owned(),
            line,
            column: 0,
            message,
        },
    };
    let mut out = Vec::new();
    let ours: Vec<Vec<u64>> = examples.iter().map(shingles).collect();
    // `a` is a row of this file (the finding's line), `b` the later row or the other file's.
    let compare = |a: &Example, sa: &[u64], b: &Example, sb: &[u64], line: u64, where_b: String| {
        // Jaccard <= smaller / larger: skip pairs that cannot reach the threshold.
        let (lo, hi) = (sa.len().min(sb.len()), sa.len().max(sb.len()));
        #[allow(clippy::cast_precision_loss)]
        if hi == 0 || (lo as f64) < NEAR_DUPLICATE_SIMILARITY * hi as f64 {
            return None;
        }
        let sim = jaccard(sa, sb);
        if sim < NEAR_DUPLICATE_SIMILARITY {
            return None;
        }
        let pct = percent(sim);
        if a.severity == b.severity {
            Some(at(
                Level::Warning,
                line,
                format!(
                    "near-duplicate: line {} and {where_b} are {pct}% similar ({} and {}, both {})",
                    a.line, a.ticket_id, b.ticket_id, a.severity
                ),
            ))
        } else if same_context(a, b) {
            Some(at(
                Level::Error,
                line,
                format!(
                    "conflicting labels: line {} and {where_b} are {pct}% similar ({} is {}, {} is {})",
                    a.line, a.ticket_id, a.severity, b.ticket_id, b.severity
                ),
            ))
        } else {
            // Another tier or repeat count explains another label: a deliberate contrast pair.
            None
        }
    };
    let mut seen: BTreeMap<(String, String, Tier, u32), &Example> = BTreeMap::new();
    // A row that is an exact duplicate is reported once and not compared again.
    let mut duplicate = vec![false; examples.len()];
    for (j, b) in examples.iter().enumerate() {
        let key = (
            exact_key(&b.subject),
            exact_key(&b.first_message),
            b.tier,
            b.repeat_24h.unwrap_or(0),
        );
        if let Some(a) = seen.get(&key) {
            out.push(at(
                Level::Error,
                b.line,
                format!(
                    "exact duplicate: line {} and line {} have the same subject and first message ({} and {})",
                    a.line, b.line, a.ticket_id, b.ticket_id
                ),
            ));
            duplicate[j] = true;
            continue;
        }
        seen.insert(key, b);
        for (i, a) in examples[..j].iter().enumerate() {
            if !duplicate[i] {
                out.extend(compare(
                    a,
                    &ours[i],
                    b,
                    &ours[j],
                    b.line,
                    format!("line {}", b.line),
                ));
            }
        }
    }
    if let Some((other_file, other)) = other {
        for o in other {
            let so = shingles(o);
            for (i, a) in examples.iter().enumerate() {
                out.extend(compare(
                    a,
                    &ours[i],
                    o,
                    &so,
                    a.line,
                    format!("{other_file} line {}", o.line),
                ));
            }
        }
    }
    out
}

/// Severity shares of `examples` that differ from `other`'s by more than 10 points, as
/// warnings: a holdout measures the training mix only when it has the same one.
pub fn compare_mix(
    file: &str,
    examples: &[Example],
    other_file: &str,
    other: &[Example],
) -> Vec<Finding> {
    let mut out = Vec::new();
    if examples.is_empty() || other.is_empty() {
        return out;
    }
    let (mine, theirs) = (Summary::of(examples), Summary::of(other));
    for s in Severity::ALL {
        let (a, b) = (mine.share(*s), theirs.share(*s));
        if (a - b).abs() > 0.10 {
            out.push(Finding {
                level: Level::Warning,
                problem: Problem {
                    file: file.to_owned(),
                    line: 0,
                    column: 0,
                    message: format!(
                        "severity {s} is {:.0}% of the rows here but {:.0}% in {other_file}: keep the mix alike",
                        a * 100.0,
                        b * 100.0
                    ),
                },
            });
        }
    }
    out
}

/// One clause of the definitions (`prompts/classifier.md`, DEFINITIONS): what a row's
/// `why_this_label` names first, so the coverage table can count rows per clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clause {
    /// The severity the clause decides.
    pub severity: Severity,
    /// The name the coverage table shows (and the usual start of `why_this_label`).
    pub name: &'static str,
    /// The words of the template's DEFINITIONS that state it (a test keeps the two in step).
    pub definition: &'static str,
    /// How `why_this_label` may start to name it (case-blind, a whole word or phrase).
    pub prefixes: &'static [&'static str],
}

/// One row of [`CLAUSES`]: the table reads as one line per clause.
const fn clause(
    severity: Severity,
    name: &'static str,
    definition: &'static str,
    prefixes: &'static [&'static str],
) -> Clause {
    Clause {
        severity,
        name,
        definition,
        prefixes,
    }
}

/// Every clause of the definitions, in the template's order. A row names its clause by starting
/// `why_this_label` with one of its prefixes and having its severity (`Billing dispute: …`
/// labelled urgent is the clause up to $1,000; labelled on_fire, the one over it).
pub const CLAUSES: &[Clause] = &[
    clause(
        Severity::Routine,
        "Docs answer",
        "docs answers",
        &["docs answer", "docs"],
    ),
    clause(
        Severity::Routine,
        "How-to",
        "how-to questions",
        &["how-to", "how to"],
    ),
    clause(Severity::Routine, "FAQ", "FAQ", &["faq"]),
    clause(
        Severity::Routine,
        "Feature request",
        "feature requests",
        &["feature request"],
    ),
    clause(
        Severity::Urgent,
        "Enterprise account",
        "enterprise accounts",
        &["enterprise account", "enterprise"],
    ),
    clause(
        Severity::Urgent,
        "Churn risk",
        "churn-risk language",
        &["churn risk", "churn-risk"],
    ),
    clause(
        Severity::Urgent,
        "Billing dispute up to $1,000",
        "billing disputes of $1,000 or less",
        &["billing dispute"],
    ),
    clause(
        Severity::Urgent,
        "Repeat ticket",
        "a repeat ticket",
        &["repeat ticket", "repeat"],
    ),
    clause(
        Severity::Urgent,
        "Competitor in frustration",
        "a competitor named in frustration",
        &["competitor"],
    ),
    clause(
        Severity::OnFire,
        "Production down",
        "production down",
        &["production down", "outage"],
    ),
    clause(Severity::OnFire, "Data loss", "data loss", &["data loss"]),
    clause(
        Severity::OnFire,
        "Security report",
        "security report",
        &["security report", "security"],
    ),
    clause(
        Severity::OnFire,
        "Legal language",
        "legal language",
        &["legal language", "legal"],
    ),
    clause(
        Severity::OnFire,
        "Billing dispute over $1,000",
        "billing dispute over $1,000",
        &["billing dispute"],
    ),
    clause(
        Severity::OnFire,
        "Need a human now",
        "a demand for a human now",
        &[
            "need a human now",
            "explicit demand for a human",
            "demand for a human",
        ],
    ),
];

/// `key` starts with `phrase` followed by a non-alphanumeric character or the end.
fn starts_with_words(key: &str, phrase: &str) -> bool {
    key.strip_prefix(phrase)
        .is_some_and(|rest| !rest.starts_with(char::is_alphanumeric))
}

/// The clause a row's `why_this_label` names, if any (see [`CLAUSES`]).
pub fn clause_of(e: &Example) -> Option<&'static Clause> {
    let folded = text::fold(&e.why);
    let key = folded.trim_start_matches(|c: char| !c.is_alphanumeric());
    CLAUSES
        .iter()
        .find(|c| c.severity == e.severity && c.prefixes.iter().any(|p| starts_with_words(key, p)))
}

/// Whether a row's `why_this_label` says it is *not* this clause (`… is not data loss`,
/// `not a security report`): a hard negative for it.
fn is_negative_of(e: &Example, c: &Clause) -> bool {
    if e.severity >= c.severity {
        return false;
    }
    let why = text::fold(&e.why);
    c.prefixes.iter().any(|p| {
        ["not ", "not a ", "not an "]
            .iter()
            .any(|n| why.contains(&format!("{n}{p}")))
    })
}

/// Rows per definition clause, and the rows that name none.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    /// Rows counted.
    pub rows: usize,
    /// One entry per [`CLAUSES`] entry, in that order.
    pub by_clause: Vec<ClauseCount>,
    /// `(line, ticket_id)` of rows whose `why_this_label` names no clause of their severity.
    pub unnamed: Vec<(u64, String)>,
}

/// The rows of one clause.
#[derive(Debug, Clone, PartialEq)]
pub struct ClauseCount {
    /// The clause.
    pub clause: &'static Clause,
    /// Rows labelled by it.
    pub rows: usize,
    /// Hard negatives: rows of a lower severity whose `why_this_label` says they are not it.
    pub negatives: usize,
}

impl Coverage {
    /// Counts `examples` per clause.
    pub fn of(examples: &[Example]) -> Self {
        let mut by_clause: Vec<ClauseCount> = CLAUSES
            .iter()
            .map(|clause| ClauseCount {
                clause,
                rows: 0,
                negatives: 0,
            })
            .collect();
        let mut unnamed = Vec::new();
        for e in examples {
            match clause_of(e) {
                Some(c) => {
                    if let Some(n) = by_clause.iter_mut().find(|n| std::ptr::eq(n.clause, c)) {
                        n.rows += 1;
                    }
                }
                None => unnamed.push((e.line, e.ticket_id.clone())),
            }
            for n in &mut by_clause {
                n.negatives += usize::from(is_negative_of(e, n.clause));
            }
        }
        Self {
            rows: examples.len(),
            by_clause,
            unnamed,
        }
    }

    /// A clause with no row is an error, one with fewer than `min_per_clause` a warning, and so
    /// is a row that names no clause. `min_per_clause` 0 checks nothing (a file of a few
    /// regression tickets need not cover the definitions).
    pub fn findings(&self, file: &str, min_per_clause: usize) -> Vec<Finding> {
        let at = |level: Level, line: u64, column: usize, message: String| Finding {
            level,
            problem: Problem {
                file: file.to_owned(),
                line,
                column,
                message,
            },
        };
        let mut out = Vec::new();
        if min_per_clause == 0 {
            return out;
        }
        for (line, id) in &self.unnamed {
            out.push(at(
                Level::Warning,
                *line,
                7,
                format!(
                    "{id}: why_this_label names no definition clause of its severity; start it with one (`Docs answer: …`, `Billing dispute over $1,000: …`, see `labels check` coverage)"
                ),
            ));
        }
        for n in &self.by_clause {
            let c = n.clause;
            if n.rows == 0 {
                out.push(at(
                    Level::Error,
                    0,
                    0,
                    format!(
                        "no row for the {} clause \"{}\": every clause of the definitions needs at least {min_per_clause}",
                        c.severity, c.name
                    ),
                ));
            } else if n.rows < min_per_clause {
                out.push(at(
                    Level::Warning,
                    0,
                    0,
                    format!(
                        "the {} clause \"{}\" has {} row(s), at least {min_per_clause} are needed",
                        c.severity, c.name, n.rows
                    ),
                ));
            }
        }
        out
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  {:<9} {:<30} {:>4}  {:>9}",
            "clause of", "", "rows", "negatives"
        )?;
        for n in &self.by_clause {
            let neg = if n.clause.severity == Severity::Routine {
                "-".to_owned()
            } else {
                n.negatives.to_string()
            };
            writeln!(
                f,
                "  {:<9} {:<30} {:>4}  {neg:>9}",
                n.clause.severity.as_str(),
                n.clause.name,
                n.rows
            )?;
        }
        if !self.unnamed.is_empty() {
            writeln!(f, "  {:<40} {:>4}", "(names no clause)", self.unnamed.len())?;
        }
        Ok(())
    }
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
fn read(path: &Path) -> Result<String, Problem> {
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

/// What `escalator labels check` asks of a file beyond well-formed rows.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Row count and severity shares ([`check`]).
    pub rules: Rules,
    /// Rows each definition clause needs ([`Coverage::findings`]; 0 skips coverage).
    pub min_per_clause: usize,
    /// Warn when the severity shares differ from the other file's ([`compare_mix`]).
    pub same_mix: bool,
    /// The topics a `topic` cell should be one of ([`topic_findings`]): the defaults
    /// ([`crate::taxonomy::DEFAULT_TOPICS`]) unless the caller has the configured ones.
    pub topics: Vec<String>,
    /// Every row must be `routine` (a file of negatives: benign tickets with trigger words).
    pub routine_only: bool,
}

impl CheckOptions {
    /// The defaults for a file by its name: a holdout (`*holdout*`: 40 rows), a regression or
    /// blind file (`*regression*`, `*blind*`: any size, no coverage, any mix), a file of
    /// negatives (`*negative*`: 40 rows, every one routine, no coverage, any mix), else a
    /// training file (50 rows, every severity at least 25%). Holdout and training file need 3
    /// rows per clause and the same severity mix as each other.
    pub fn for_file(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let negatives = name.contains("negative");
        let apart = negatives || name.contains("regression") || name.contains("blind");
        let (min_rows, min_share, min_per_clause) = if name.contains("holdout") {
            (40, 0.0, 3)
        } else if negatives {
            (40, 0.0, 0)
        } else if apart {
            (1, 0.0, 0)
        } else {
            (50, 0.25, 3)
        };
        Self {
            rules: Rules {
                min_rows,
                min_share,
            },
            min_per_clause,
            same_mix: !apart,
            topics: crate::taxonomy::DEFAULT_TOPICS
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            routine_only: negatives,
        }
    }

    /// The file a file must stay apart from when `--against` is not given: the training file
    /// for a holdout, regression or blind file, the holdout for a training file or a file of
    /// negatives (the rules are derived from both, so neither may copy the holdout), when it
    /// exists.
    pub fn default_against(path: &Path) -> Option<std::path::PathBuf> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let sibling = if ["holdout", "regression", "blind"]
            .iter()
            .any(|n| name.contains(n))
        {
            "labels.csv"
        } else {
            "holdout.csv"
        };
        let p = path.with_file_name(sibling);
        (p.exists() && p != path).then_some(p)
    }
}

/// Everything `labels check` found in one file.
#[derive(Debug, Clone)]
pub struct Report {
    /// The file as given.
    pub file: String,
    /// The file it was compared with, if any.
    pub against: Option<String>,
    /// Errors and warnings, errors first, each in file order.
    pub findings: Vec<Finding>,
    /// Rows per severity and tier (empty when the file did not parse).
    pub summary: Summary,
    /// Rows per clause (empty when the file did not parse).
    pub coverage: Coverage,
    /// The rows each clause needed.
    pub min_per_clause: usize,
}

impl Report {
    /// Errors found.
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.level == Level::Error)
            .count()
    }

    /// Warnings found.
    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }

    /// No error, and with `strict` no warning either.
    pub fn passed(&self, strict: bool) -> bool {
        self.errors() == 0 && (!strict || self.warnings() == 0)
    }
}

impl fmt::Display for Report {
    /// The summary a clean file prints: rows per severity and tier, then the coverage table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.summary)?;
        writeln!(
            f,
            "coverage: rows per definition clause (each needs at least {}; negatives: rows whose why_this_label says they are not it)",
            self.min_per_clause
        )?;
        write!(f, "{}", self.coverage)
    }
}

/// Loads and checks one labels file: [`parse`], [`check`] (against `against`, when given),
/// [`hygiene`], coverage and [`topic_findings`]. Never stops at the first problem.
pub fn check_file(path: &Path, against: Option<&Path>, options: &CheckOptions) -> Report {
    let file = path.display().to_string();
    let mut problems: Vec<Problem> = Vec::new();
    let (examples, topic_column) = match read(path) {
        Ok(text) => {
            let column = columns(&file, &text)
                .ok()
                .and_then(|c| c.iter().position(|n| *n == "topic"))
                .map(|i| i + 1);
            let examples = parse(&file, &text).unwrap_or_else(|p| {
                problems.extend(p);
                Vec::new()
            });
            (examples, column)
        }
        Err(p) => {
            problems.push(p);
            (Vec::new(), None)
        }
    };
    let other = against.and_then(|a| match load(a) {
        Ok(o) => Some((a.display().to_string(), o)),
        Err(p) => {
            problems.extend(p);
            None
        }
    });
    let mut report = check_examples(&file, &examples, other, options, problems);
    // A file that did not parse has no examples, so no topic warnings either.
    if let Some(column) = topic_column {
        report
            .findings
            .extend(topic_findings(&file, &examples, column, &options.topics));
        report.findings.sort_by_key(|f| std::cmp::Reverse(f.level));
    }
    report
}

/// A warning for each row whose `topic` (in 1-based `column`) is not one of `topics`: `eval`
/// leaves such a row out of the topic accuracy and the prompt's example shows no topic for it,
/// so the row teaches and measures nothing about the topic. Not an error: a file labelled with
/// another taxonomy stays usable for the severity.
pub fn topic_findings(
    file: &str,
    examples: &[Example],
    column: usize,
    topics: &[String],
) -> Vec<Finding> {
    examples
        .iter()
        .filter_map(|e| {
            let t = e.topic.as_deref()?;
            (!topics.iter().any(|c| c == t)).then(|| Finding {
                level: Level::Warning,
                problem: Problem {
                    file: file.to_owned(),
                    line: e.line,
                    column,
                    message: format!(
                        "{}: topic {t:?} is not one of the configured topics ({}); eval leaves the row out of the topic accuracy and the prompt shows no topic for it",
                        e.ticket_id,
                        topics.join(", ")
                    ),
                },
            })
        })
        .collect()
}

/// An error for each row that is not `routine`, at its severity cell (a file of negatives).
fn not_routine(file: &str, examples: &[Example]) -> Vec<Finding> {
    examples
        .iter()
        .filter(|e| e.severity != Severity::Routine)
        .map(|e| Finding {
            level: Level::Error,
            problem: Problem::at(
                file,
                e.line,
                5,
                format!(
                    "{}: a negative must be routine, not {}",
                    e.ticket_id, e.severity
                ),
            ),
        })
        .collect()
}

/// [`check_file`] over rows already parsed (e.g. a file about to be written): `unreadable`
/// holds problems met while reading them, which skip the other checks.
pub fn check_examples(
    file: &str,
    examples: &[Example],
    other: Option<(String, Vec<Example>)>,
    options: &CheckOptions,
    unreadable: Vec<Problem>,
) -> Report {
    let error = |problem: Problem| Finding {
        level: Level::Error,
        problem,
    };
    let mut findings: Vec<Finding> = unreadable.into_iter().map(error).collect();
    let coverage = Coverage::of(examples);
    if findings.is_empty() {
        let other = other.as_ref().map(|(n, o)| (n.as_str(), o.as_slice()));
        findings.extend(
            check(file, examples, &options.rules, other)
                .into_iter()
                .map(error),
        );
        findings.extend(hygiene(file, examples, other));
        if let (true, Some((other_file, other))) = (options.same_mix, other) {
            findings.extend(compare_mix(file, examples, other_file, other));
        }
        findings.extend(coverage.findings(file, options.min_per_clause));
        if options.routine_only {
            findings.extend(not_routine(file, examples));
        }
        findings.sort_by_key(|f| std::cmp::Reverse(f.level));
    }
    Report {
        file: file.to_owned(),
        against: other.map(|(n, _)| n),
        findings,
        summary: Summary::of(examples),
        coverage,
        min_per_clause: options.min_per_clause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    const HEAD: &str = "ticket_id,subject,first_message,tier,severity,route,why_this_label\n";

    fn shipped(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("labels")
            .join(name)
    }

    #[test]
    fn shipped_files_are_clean() {
        let train = parse("labels.csv", EMBEDDED_LABELS).unwrap();
        let hold = parse("holdout.csv", EMBEDDED_HOLDOUT).unwrap();
        let files = [
            ("labels.csv", &train, 100, ("holdout.csv", hold.as_slice())),
            ("holdout.csv", &hold, 40, ("labels.csv", train.as_slice())),
        ];
        for (name, rows, min_rows, other) in files {
            let rules = Rules {
                min_rows,
                min_share: 0.25,
            };
            assert_eq!(check(name, rows, &rules, Some(other)), vec![], "{name}");
        }
        // What `labels check --strict` runs on each: no error and no warning.
        for (file, against) in [
            ("labels.csv", "holdout.csv"),
            ("holdout.csv", "labels.csv"),
            ("regressions.csv", "labels.csv"),
            ("negatives.csv", "holdout.csv"),
            ("blind.csv", "labels.csv"),
        ] {
            let path = shipped(file);
            let r = check_file(
                &path,
                Some(&shipped(against)),
                &CheckOptions::for_file(&path),
            );
            let shown: Vec<String> = r.findings.iter().map(ToString::to_string).collect();
            assert!(r.passed(true), "{file}: {shown:#?}");
        }
        // Every shipped row has the optional columns filled in where they apply.
        assert!(
            train
                .iter()
                .all(|e| e.repeat_24h.is_some() && e.sentiment.is_some())
        );
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

    fn row(id: &str, subject: &str, body: &str, tier: &str, severity: &str, line: u64) -> Example {
        Example {
            ticket_id: id.into(),
            subject: subject.into(),
            first_message: body.into(),
            tier: Tier::parse("tier", tier).unwrap(),
            severity: Severity::parse("severity", severity).unwrap(),
            route: Severity::parse("severity", severity).unwrap().route(),
            why: "w".into(),
            line,
            ..Example::default()
        }
    }

    fn messages(findings: &[Finding]) -> Vec<String> {
        findings.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn duplicates_and_conflicting_labels_are_found_within_and_across_files() {
        let body = "We were charged $49 twice on March 3rd for the same Pro subscription, please refund one.";
        let typo = "We were charged $49 twice on March 3rd for teh same Pro subscription, please refund one!";
        let rows = vec![
            row("A-1", "Charged twice", body, "pro", "urgent", 2),
            row("A-2", "CHARGED  twice", body, "pro", "urgent", 3),
            row("A-3", "Charged twice", typo, "pro", "routine", 4),
            row("A-4", "Charged twice!", typo, "pro", "urgent", 5),
            // Another tier may rightly have another label: a contrast pair, not a conflict.
            row("A-5", "Charged twice", body, "enterprise", "on_fire", 6),
            row(
                "A-6",
                "Dark mode",
                "Would love a dark mode for the editor.",
                "pro",
                "routine",
                7,
            ),
        ];
        let found = messages(&hygiene("f.csv", &rows, None));
        assert_eq!(
            found,
            vec![
                "f.csv:3: exact duplicate: line 2 and line 3 have the same subject and first message (A-1 and A-2)",
                "f.csv:4: conflicting labels: line 2 and line 4 are 87% similar (A-1 is urgent, A-3 is routine)",
                "f.csv:5: warning: near-duplicate: line 2 and line 5 are 87% similar (A-1 and A-4, both urgent)",
                "f.csv:5: conflicting labels: line 4 and line 5 are 100% similar (A-3 is routine, A-4 is urgent)",
            ]
        );
        let other = vec![row("H-9", "Double charge", typo, "pro", "on_fire", 12)];
        let found = messages(&hygiene("f.csv", &rows[5..], Some(("h.csv", &other))));
        assert!(found.is_empty(), "{found:?}");
        let found = messages(&hygiene("f.csv", &rows[..1], Some(("h.csv", &other))));
        assert_eq!(
            found,
            vec![
                "f.csv:2: conflicting labels: line 2 and h.csv line 12 are 75% similar (A-1 is urgent, H-9 is on_fire)"
            ]
        );
    }

    #[test]
    fn similarity_shrugs_off_typos_and_separates_different_tickets() {
        let a = row(
            "A",
            "Webhooks stopped",
            "Our webhooks stopped firing two hours ago.",
            "pro",
            "on_fire",
            2,
        );
        let b = row(
            "B",
            "webhooks stopped",
            "our webhooks stoped firing 2 hours ago!!",
            "pro",
            "on_fire",
            3,
        );
        let c = row(
            "C",
            "Dark mode",
            "Would love a dark mode for the editor.",
            "pro",
            "routine",
            4,
        );
        assert!(
            similarity(&a, &b) > NEAR_DUPLICATE_SIMILARITY,
            "{}",
            similarity(&a, &b)
        );
        assert!(similarity(&a, &c) < 0.1);
        assert!((similarity(&a, &a) - 1.0).abs() < 1e-9);
        // Short and non-Latin texts are compared by characters, never bytes.
        let d = row("D", "ok", "日本", "free", "routine", 5);
        assert!((similarity(&d, &d) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn coverage_counts_rows_per_clause_and_reports_gaps() {
        let mut rows = Vec::new();
        for (i, (why, sev)) in [
            ("Docs answer: where the page is.", "routine"),
            ("'How-to' question.", "routine"),
            (
                "FAQ billing question, not a billing dispute over $1,000.",
                "routine",
            ),
            ("Billing dispute: $49 twice.", "urgent"),
            ("Billing dispute over $1,000: $4,800.", "on_fire"),
            ("Enterprise account: never routine.", "urgent"),
            ("Because I said so.", "urgent"),
        ]
        .iter()
        .enumerate()
        {
            let mut e = row(&format!("A-{i}"), "s", "m", "pro", sev, i as u64 + 2);
            e.why = (*why).into();
            rows.push(e);
        }
        let cov = Coverage::of(&rows);
        let count = |name: &str| {
            cov.by_clause
                .iter()
                .find(|c| c.clause.name == name)
                .map(|c| (c.rows, c.negatives))
                .unwrap()
        };
        assert_eq!(count("Docs answer"), (1, 0));
        assert_eq!(count("How-to"), (1, 0));
        assert_eq!(count("Billing dispute up to $1,000"), (1, 1));
        assert_eq!(count("Billing dispute over $1,000"), (1, 1));
        assert_eq!(count("Enterprise account"), (1, 0));
        assert_eq!(cov.unnamed, vec![(8, "A-6".to_owned())]);
        let f = cov.findings("f.csv", 1);
        let found = messages(&f);
        assert!(found.contains(&"f.csv:8:7: warning: A-6: why_this_label names no definition clause of its severity; start it with one (`Docs answer: …`, `Billing dispute over $1,000: …`, see `labels check` coverage)".to_owned()), "{found:#?}");
        assert!(found.contains(&"f.csv: no row for the on_fire clause \"Data loss\": every clause of the definitions needs at least 1".to_owned()), "{found:#?}");
        assert_eq!(f.iter().filter(|f| f.level == Level::Error).count(), 9);
        let thin = messages(&cov.findings("f.csv", 2));
        assert!(
            thin.contains(
                &"f.csv: warning: the routine clause \"FAQ\" has 1 row(s), at least 2 are needed"
                    .to_owned()
            ),
            "{thin:#?}"
        );
        assert!(cov.findings("f.csv", 0).is_empty());
        let shown = cov.to_string();
        assert!(
            shown.contains("  urgent    Billing dispute up to $1,000      1          1\n"),
            "{shown}"
        );
    }

    #[test]
    fn every_clause_is_stated_in_the_template_definitions() {
        let template = crate::prompt::EMBEDDED_TEMPLATE;
        let start = template.find("DEFINITIONS").unwrap();
        let end = template.find("ROUTE").unwrap();
        let definitions = template[start..end].to_lowercase();
        for c in CLAUSES {
            assert!(
                definitions.contains(&c.definition.to_lowercase()),
                "{}: {:?} is not in the DEFINITIONS of prompts/classifier.md",
                c.name,
                c.definition
            );
        }
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

    #[test]
    fn check_counts_rows_shares_and_overlap() {
        let a = parse("a.csv", &format!("{HEAD}A-1,s,m,pro,routine,bot,w\n")).unwrap();
        let b = parse("b.csv", &format!("{HEAD}B-1,other,M ,pro,routine,bot,w\n")).unwrap();
        let p = check(
            "a.csv",
            &a,
            &Rules {
                min_rows: 2,
                min_share: 0.25,
            },
            Some(("b.csv", &b)),
        );
        let p: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(
            p,
            vec![
                "a.csv: has 1 rows, at least 2 are required",
                "a.csv: severity urgent has 0 rows (0%), every bucket needs at least 25%",
                "a.csv: severity on_fire has 0 rows (0%), every bucket needs at least 25%",
                "a.csv: A-1 overlaps b.csv row B-1 (first_message is the same)",
            ]
        );
    }

    #[test]
    fn a_topic_that_is_not_configured_is_a_warning_naming_line_and_column() {
        let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        std::io::Write::write_all(
            f.as_file_mut(),
            "ticket_id,subject,first_message,tier,severity,route,why_this_label,topic,sentiment\n\
             A-1,Refund,Please refund the duplicate charge.,pro,urgent,human,Billing dispute: twice.,billing,neutral\n\
             A-2,Charts,\"The dashboards page\nlooks different today.\",free,routine,bot,Docs answer: a question.,dashboards,positive\n\
             A-3,Hello,hi,free,routine,bot,How-to: no question yet.,,neutral\n"
                .as_bytes(),
        )
        .unwrap();
        let topic_warnings = |options: &CheckOptions| -> Vec<String> {
            check_file(f.path(), None, options)
                .findings
                .iter()
                .filter(|x| x.problem.message.contains("configured topics"))
                .map(|x| {
                    assert_eq!(x.level, Level::Warning);
                    x.to_string()
                })
                .collect()
        };
        let mut options = CheckOptions::for_file(f.path());
        let name = f.path().display();
        // The default topics: `dashboards` (line 3, column 8) is not one; an empty cell is
        // "not known", not a wrong topic.
        assert_eq!(
            topic_warnings(&options),
            vec![format!(
                "{name}:3:8: warning: A-2: topic \"dashboards\" is not one of the configured topics (billing, bug, outage, account_access, how_to, feature_request, security, legal, other); eval leaves the row out of the topic accuracy and the prompt shows no topic for it"
            )]
        );
        // The configured topics decide.
        options.topics = vec!["dashboards".into(), "other".into()];
        let shown = topic_warnings(&options);
        assert_eq!(shown.len(), 1, "{shown:#?}");
        assert!(
            shown[0].starts_with(&format!("{name}:2:8: warning: A-1: topic \"billing\" is not one of the configured topics (dashboards, other)")),
            "{shown:#?}"
        );
        options.topics.push("billing".into());
        assert_eq!(topic_warnings(&options), Vec::<String>::new());
        // A warning, so `labels check` passes without `--strict`.
        options.topics = vec!["other".into()];
        let r = check_file(f.path(), None, &options);
        assert!(r.warnings() >= 2 && !r.passed(true));
    }
}
