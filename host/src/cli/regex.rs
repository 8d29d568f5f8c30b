//! `wasmban regex`: run a filter over a log file, the way `fail2ban-regex`
//! does, through the same component the daemon uses. `--json` follows the
//! conformance contract: one JSON object per processed line.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::cli::Cli;
use crate::cli::log_batches::{CHUNK_BYTES, LogBatches, ReadBatch};
use crate::config::filter::FilterDefinition;
use crate::plugin::{FilterInstance, PluginError, Registry, Runtime, RuntimeOptions, split};
use crate::wit::types::{Failure, Scan};

/// Ignored or missed lines fewer than this are listed after the summary,
/// as fail2ban-regex lists them.
const FEW_LINES: usize = 20;

/// Lines sent to the filter per call.
const BATCH_LINES: usize = 4096;

impl RegexArgs {
    /// How many missed or ignored lines are listed when not all are
    /// asked for: fail2ban-regex takes its -L for this too.
    fn listed_lines(&self) -> usize {
        self.maxlines.map_or(FEW_LINES, |n| n as usize)
    }
}

/// Arguments of `wasmban regex`.
#[derive(Debug, Args)]
pub struct RegexArgs {
    /// One JSON object per processed line (the conformance contract).
    #[arg(long)]
    pub json: bool,
    /// Pin "now" (unix seconds) instead of the real clock.
    #[arg(long, value_name = "UNIX")]
    pub now: Option<f64>,
    /// Lines are journal messages: no date detection, their time is now.
    #[arg(long)]
    pub journal: bool,
    /// A filter parameter, like `filter = NAME[KEY=VALUE]` in a jail.
    #[arg(long = "opt", value_name = "KEY=VALUE")]
    pub opts: Vec<String>,
    /// Print the lines no failregex matched.
    #[arg(long, conflicts_with = "print_no_missed")]
    pub print_all_missed: bool,
    /// Print the lines an ignoreregex dropped.
    #[arg(long, conflicts_with = "print_no_ignored")]
    pub print_all_ignored: bool,
    /// Do not list the lines no failregex matched, even when few.
    #[arg(long)]
    pub print_no_missed: bool,
    /// Do not list the lines an ignoreregex dropped, even when few.
    #[arg(long)]
    pub print_no_ignored: bool,
    /// fail2ban-regex's `-L`: the filter's `maxlines`, replaced (and, as
    /// in fail2ban-regex, the number of missed or ignored lines listed
    /// without --print-all-*).
    #[arg(short = 'L', long = "maxlines", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub maxlines: Option<u32>,
    /// fail2ban-regex's `-e`: the log's encoding. wasmban reads UTF-8 only.
    #[arg(short = 'e', long = "encoding", value_name = "ENCODING")]
    pub encoding: Option<String>,
    /// Print the lines that matched.
    #[arg(long)]
    pub print_all_matched: bool,
    /// Cores to use: with 2 (the default, when the machine has them) a
    /// filter that can split its work runs as two instances on two
    /// threads; 1 runs one instance. The answers are the same.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub threads: usize,
    /// Bytes read from the log at a time (for tests of the reader).
    #[arg(long, hide = true, default_value_t = CHUNK_BYTES)]
    pub read_bytes: usize,
    /// Print the resolved filter definition (one `key<TAB>value` line per
    /// option handed to the filter, newlines as \n) and exit.
    #[arg(long)]
    pub print_definition: bool,
    /// fail2ban-regex's `-d`: the filter's `datepattern`, replaced.
    #[arg(short = 'd', long = "datepattern", value_name = "PATTERN")]
    pub datepattern: Option<String>,
    /// fail2ban-regex's `--timezone`: the zone of dates that carry none
    /// (`UTC`, `UTC+0200`, `-05:00`); the machine's own by default.
    #[arg(long = "timezone", alias = "TZ", value_name = "ZONE")]
    pub timezone: Option<String>,
    /// fail2ban-regex's `-o`: print only, per failure, this token (`id`,
    /// `ip`, `msg`, `matches`, a field such as `user`) or template
    /// (`<ip> for <F-USER>`).
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: Option<String>,
    /// fail2ban-regex's `-m`: journalctl matches (`_COMM=sshd + _COMM=sshd-session`)
    /// in place of the filter's `journalmatch`, for the log `systemd-journal`.
    #[arg(short = 'm', long = "journalmatch", value_name = "MATCHES")]
    pub journalmatch: Option<String>,
    /// The log file to scan, a log line, or `systemd-journal` (optionally
    /// `systemd-journal[journalfiles=FILE,journalpath=DIR]`), as fail2ban-regex takes it.
    pub log: String,
    /// A filter file path, the name of a filter in the configuration's
    /// filter.d (`sshd`, `sshd[mode=aggressive]`), or a failregex.
    pub filter: String,
    /// An ignoreregex, or a filter file whose ignoreregex to use.
    pub ignoreregex: Option<String>,
}

/// Whether `log` names the journal (`systemd-journal`, optionally with
/// `[options]`), as fail2ban-regex's LOG argument may.
fn is_journal(log: &str) -> bool {
    log.strip_prefix("systemd-journal").is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
}

/// A log line given on the command line, in a private temporary file for
/// the time of the run.
struct LineFile(PathBuf);

impl LineFile {
    fn new(line: &str) -> anyhow::Result<LineFile> {
        LineFile::written("the given line", |f| Ok(writeln!(f, "{}", line.trim_end_matches(['\r', '\n']))?))
    }

    /// The journal's entries that `spec` selects, one line each, and
    /// their times.
    fn from_journal(spec: &crate::tail::JournalSpec) -> anyhow::Result<(LineFile, Vec<f64>)> {
        let mut times = Vec::new();
        let file = LineFile::written("the journal's entries", |f| {
            times = spec.export(f).map_err(|e| anyhow::anyhow!("systemd-journal: {e}"))?;
            Ok(())
        })?;
        Ok((file, times))
    }

    fn written(what: &str, write: impl FnOnce(&mut std::fs::File) -> anyhow::Result<()>) -> anyhow::Result<LineFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let path = std::env::temp_dir().join(format!("wasmban-regex-{}-{nanos}.log", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {what} to {}", path.display()))?;
        // Removed however the writing ends.
        let file = LineFile(path);
        write(&mut f)?;
        Ok(file)
    }
}

impl Drop for LineFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// fail2ban's fixed-offset zones (`UTC`, `GMT`, `Z`, optionally followed
/// by `+hh`, `+hhmm` or `+hh:mm`, or the offset alone) as a POSIX rule.
pub fn fixed_zone_rule(zone: &str) -> Result<String, String> {
    let zone = zone.trim();
    let offset = ["UTC", "GMT", "Z"].iter().find_map(|p| zone.strip_prefix(p)).unwrap_or(zone);
    if offset.is_empty() {
        return Ok("UTC0".into());
    }
    let bad = || format!("time zone {zone:?}: use UTC, UTC+hhmm or +hh:mm (named zones such as CET are not read)");
    let (sign, digits) = match offset.as_bytes()[0] {
        b'+' => ('+', &offset[1..]),
        b'-' => ('-', &offset[1..]),
        _ => return Err(bad()),
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if !(digits.len() == 2 || digits.len() == 4) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let (hours, minutes) = (&digits[..2], if digits.len() == 4 { &digits[2..] } else { "00" });
    if hours > "23" || minutes > "59" {
        return Err(bad());
    }
    // POSIX counts west of Greenwich as positive: the sign flips.
    let posix_sign = if sign == '+' { '-' } else { '+' };
    Ok(format!("<{sign}{hours}{minutes}>{posix_sign}{hours}:{minutes}"))
}

fn parse_opts(opts: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    opts.iter()
        .map(|o| match o.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => bail!("--opt {o:?}: expected KEY=VALUE"),
        })
        .collect()
}

fn load_definition(cli: &Cli, filter: &str, params: &[(String, String)]) -> anyhow::Result<FilterDefinition> {
    // PACK.wasm:FILTER or PACK:FILTER (installed in plugin.d).
    if let Some((pack, _)) = filter.rsplit_once(':')
        && (pack.ends_with(".wasm") || !(pack.contains('/') || pack.ends_with(".conf") || pack.ends_with(".local")))
    {
        let pack = crate::cli::plugin::resolve_reference(pack)?;
        let name = filter.rsplit_once(':').map(|(_, f)| f).unwrap_or("");
        if let Some(def) = FilterDefinition::from_pack(&format!("{pack}:{name}"), params) {
            return Ok(def);
        }
    }
    let path = Path::new(filter);
    let looks_like_path = filter.contains('/') || filter.ends_with(".conf") || filter.ends_with(".local");
    if looks_like_path || path.is_file() {
        return Ok(FilterDefinition::load_file(path, params)?);
    }
    // `sshd` or `sshd[mode=aggressive]` from filter.d; anything else is a
    // failregex, as fail2ban-regex reads its second argument.
    if let Ok(reference) = crate::config::values::parse_reference(filter)
        && !reference.name.contains(char::is_whitespace)
        && cli.config_dir.join("filter.d").join(format!("{}.conf", reference.name)).is_file()
    {
        let mut all = reference.params.clone();
        all.extend(params.iter().cloned());
        return Ok(FilterDefinition::load(&cli.config_dir, &reference.name, &all)?);
    }
    Ok(FilterDefinition::from_regex(filter))
}

fn failure_json(f: &Failure) -> Value {
    let mut fields = serde_json::Map::new();
    let mut users: Vec<String> = Vec::new();
    for (k, v) in &f.fields {
        if k == "users" {
            users.push(v.clone());
        } else {
            fields.insert(k.clone(), Value::String(v.clone()));
        }
    }
    if !users.is_empty() {
        users.sort();
        users.dedup();
        fields.insert("users".into(), json!(users));
    }
    json!({ "id": f.host, "regex": f.rule, "fields": fields, "matches": f.matches })
}

/// The cores this process may run on.
fn cores() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// Run `wasmban regex`.
pub fn run(cli: &Cli, args: &RegexArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut params = parse_opts(&args.opts)?;
    let from_journal = is_journal(&args.log);
    // As fail2ban-regex does: the filter learns its lines come from the
    // journal (prefixes differ), unless told otherwise.
    if from_journal && !params.iter().any(|(k, _)| k == "logtype") {
        params.push(("logtype".into(), "journal".into()));
    }
    let mut definition = load_definition(cli, &args.filter, &params)?;
    if let Some(ignore) = &args.ignoreregex {
        // A filter file's ignoreregex, or the regex itself.
        let extra = if Path::new(ignore).is_file() {
            FilterDefinition::load_file(Path::new(ignore), &[])?.list("ignoreregex")
        } else {
            vec![ignore.clone()]
        };
        let mut all = definition.list("ignoreregex");
        all.extend(extra);
        definition.options.insert("ignoreregex".into(), all.join("\n"));
    }
    if let Some(pattern) = &args.datepattern {
        definition.options.insert("datepattern".into(), pattern.clone());
    }
    if let Some(maxlines) = args.maxlines {
        definition.options.insert("maxlines".into(), maxlines.to_string());
    }
    if let Some(encoding) = &args.encoding {
        let utf8 = encoding.to_ascii_lowercase().replace(['-', '_'], "");
        if utf8 != "utf8" {
            anyhow::bail!(
                "-e {encoding}: wasmban reads logs as UTF-8 only (invalid bytes are replaced); convert the log first, \
                 for example with iconv -f {encoding} -t UTF-8"
            );
        }
    }
    let mut options = definition.component_options()?;
    if let Some(zone) = &args.timezone {
        let rule = fixed_zone_rule(zone).map_err(|e| anyhow::anyhow!("--timezone: {e}"))?;
        options.retain(|(k, _)| k != "timezone");
        options.push(("timezone".into(), rule));
    }
    // fail2ban-regex's `systemd-journal[journalfiles=..., journalpath=...]`,
    // read through journalctl with -m's matches or the filter's.
    let journal = match args.log.strip_prefix("systemd-journal") {
        Some(params) if from_journal => {
            let matches = args.journalmatch.clone().or_else(|| definition.get("journalmatch").map(str::to_string));
            let spec = crate::tail::JournalSpec::parse(&format!("systemd{params}"), matches.as_deref())
                .map_err(|e| anyhow::anyhow!("{}: {e}", args.log))?;
            Some((spec, matches))
        }
        _ if args.journalmatch.is_some() => bail!("-m (--journalmatch) is for the log systemd-journal only"),
        _ => None,
    };
    let mut journal_times = Vec::new();
    let line_file = match (&journal, Path::new(&args.log).is_file()) {
        (Some((spec, _)), _) => {
            let (file, times) = LineFile::from_journal(spec)?;
            journal_times = times;
            Some(file)
        }
        (None, true) => None,
        (None, false) => Some(LineFile::new(&args.log)?),
    };
    let log_path = line_file.as_ref().map_or_else(|| PathBuf::from(&args.log), |f| f.0.clone());
    // fail2ban-regex tries every failregex on every line, so its hit counts
    // are per regex; the daemon stops at the first match.
    options.push(("check-all".into(), "1".into()));
    if args.journal || journal.is_some() {
        options.push(("journal".into(), "1".into()));
    }
    if args.out.as_deref() == Some("row") {
        // fail2ban-regex prints its internal Python tuple there; no script
        // can rely on that shape, and the tokens say the same things.
        anyhow::bail!(
            "-o row prints fail2ban's internal ticket tuple, which wasmban does not have; use -o with tokens (id, ip, time, msg, matches, a field) or a template such as '<ip> <time> <F-USER>'"
        );
    }
    // The summary's Prefregex, Ignoreregex and date sections.
    let summary = !args.json && args.out.is_none();
    if summary {
        options.push(("report".into(), "1".into()));
    }
    if args.print_definition {
        for (k, v) in &options {
            println!("{k}\t{}", v.replace('\n', "\\n"));
        }
        return Ok(());
    }
    let (mut filter, second) = build_filters(cli, args, &definition, options)?;
    let now = args.now.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
    });
    let file = LogBatches::open(&log_path)?;
    let batches = LogBatches::new(BATCH_LINES);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let failregex = definition.list("failregex");
    let mut tally = Tally { hits: vec![0usize; failregex.len()], journal_times, ..Tally::default() };
    let mut each = |k: usize, batch: &std::sync::Arc<ReadBatch>, scan: Result<Scan, PluginError>| {
        let counted = tally.batch(args, batch, scan, &mut out);
        batches.release(k);
        counted
    };
    let path = log_path.clone();
    // When the second could not be built, the first does all the work.
    let mut second = second.and_then(|building| building.join().ok().flatten());
    let fed: anyhow::Result<()> = std::thread::scope(|scope| {
        scope.spawn(|| batches.read(file, &path, args.read_bytes));
        let batch = |k: usize| batches.get(k);
        let fed = match second.as_mut() {
            Some(preparer) => {
                split::feed_split(&mut filter, preparer, BATCH_LINES as u32, &batch, now, true, &mut each)
            }
            None => (|| {
                for k in 0.. {
                    let Some(text) = batch(k) else { break };
                    let scan = filter.feed(AsRef::<str>::as_ref(&*text), now, true);
                    each(k, &text, scan)?;
                }
                Ok(())
            })(),
        };
        // Stops the reader if the run ended early.
        let unread = batches.finish();
        fed.and(unread.map_or(Ok(()), Err))
    });
    fed?;
    if summary {
        // Dates are read by whichever instance prepares; the rest is
        // counted by the one that decides.
        for instance in std::iter::once(&mut filter).chain(second.as_mut()) {
            match instance.report() {
                Ok(Some(hits)) => tally.add_report(hits),
                Ok(None) => {}
                Err(e) => eprintln!("wasmban: the filter's counts are not known: {e}"),
            }
        }
        tally.summary(&mut out, args, &definition, &failregex, Some(started.elapsed()))?;
    }
    out.flush()?;
    Ok(())
}

/// The filter instance, and the second one (for the split over two cores)
/// being built on a thread of its own. A filter that can split its work
/// runs on two instances; building one (compiling every regex) costs as
/// much as scanning some ten thousand lines, so the second is built while
/// the first is.
fn build_filters(
    cli: &Cli,
    args: &RegexArgs,
    definition: &FilterDefinition,
    options: Vec<(String, String)>,
) -> anyhow::Result<(FilterInstance, Option<std::thread::JoinHandle<Option<FilterInstance>>>)> {
    let registry = Registry::new(Some(cli.plugin_dir()));
    let runtime = Runtime::new(RuntimeOptions { cache_dir: Some(cli.cache_dir()), ..RuntimeOptions::default() })?;
    let plugin = runtime.load_named(&registry, definition.plugin())?;
    let second = (plugin.can_prepare() && args.threads > 1 && cores() > 1).then(|| {
        let (plugin, options) = (plugin.clone(), options.clone());
        let pack_filter = definition.pack_filter().map(str::to_owned);
        std::thread::spawn(move || plugin.filter_for(pack_filter.as_deref(), options).ok())
    });
    let filter = plugin
        .filter_for(definition.pack_filter(), options)
        .with_context(|| format!("filter {} ({})", definition.name, definition.where_()))?;
    Ok((filter, second))
}

/// What the run counted, as fail2ban-regex counts it.
#[derive(Default)]
struct Tally {
    /// Hits per failregex (helpers included).
    hits: Vec<usize>,
    lines: usize,
    matched: usize,
    ignored: usize,
    missed: usize,
    /// Lines lost to filter errors.
    skipped: usize,
    /// The texts of the lines the summary lists, when asked for.
    matched_texts: Vec<String>,
    ignored_texts: Vec<String>,
    missed_texts: Vec<String>,
    /// Lines the prefregex matched (None: the filter has none, or does not
    /// count).
    prefregex: Option<u64>,
    /// Matches of each ignoreregex.
    ignoreregex: Vec<u64>,
    /// Lines each date template dated, by name.
    dates: Vec<(String, u64)>,
    /// The time of each line, when they are journal entries (listed lines
    /// show it in front, as fail2ban-regex shows them).
    journal_times: Vec<f64>,
}

/// A regex with fail2ban's `<F-NAME>...</F-NAME>` captures written as the
/// Python groups fail2ban-regex shows (`(?P<name>...)`).
fn python_groups(regex: &str) -> String {
    let mut out = String::with_capacity(regex.len());
    let mut rest = regex;
    while let Some(at) = [rest.find("<F-"), rest.find("</F-")].into_iter().flatten().min() {
        out.push_str(&rest[..at]);
        let tag = &rest[at..];
        let closing = tag.starts_with("</");
        let name_start = if closing { 4 } else { 3 };
        match tag.find('>') {
            Some(end) if tag[name_start..end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                if closing {
                    out.push(')');
                } else {
                    out.push_str(&format!("(?P<{}>", tag[name_start..end].to_ascii_lowercase()));
                }
                rest = &tag[end + 1..];
            }
            _ => {
                out.push_str(&tag[..1]);
                rest = &tag[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// fail2ban-regex's list layout: an optional header, one `|  ` line per
/// item, then `` `- ``; nothing at all for no items.
fn pprint_list(out: &mut impl Write, items: &[String], header: Option<&str>) -> std::io::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    if let Some(header) = header {
        writeln!(out, "|- {header}")?;
    }
    for item in items {
        writeln!(out, "|  {item}")?;
    }
    writeln!(out, "`-")
}

/// A regex section of the summary (Failregex, Ignoreregex): its total, and
/// each regex that matched with its count.
fn regex_section(
    out: &mut impl Write,
    title: &str,
    counts: &[u64],
    regex: impl Fn(usize) -> String,
) -> std::io::Result<()> {
    writeln!(out, "\n{title}: {} total", counts.iter().sum::<u64>())?;
    let items: Vec<String> = counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| format!("{:>2}) [{n}] {}", i + 1, regex(i)))
        .collect();
    pprint_list(out, &items, Some(" #) [# of hits] regular expression"))
}

impl Tally {
    /// Add what one filter instance counted (see the WIT's `report`).
    fn add_report(&mut self, hits: crate::wit::ReportHits) {
        if let Some(n) = hits.prefregex {
            *self.prefregex.get_or_insert(0) += n;
        }
        if self.ignoreregex.len() < hits.ignoreregex.len() {
            self.ignoreregex.resize(hits.ignoreregex.len(), 0);
        }
        for (total, n) in self.ignoreregex.iter_mut().zip(hits.ignoreregex) {
            *total += n;
        }
        for (name, n) in hits.dates {
            match self.dates.iter_mut().find(|(known, _)| *known == name) {
                Some((_, total)) => *total += n,
                None => self.dates.push((name, n)),
            }
        }
    }

    /// Count one batch (and print its JSON records with `--json`).
    fn batch(
        &mut self,
        args: &RegexArgs,
        batch: &ReadBatch,
        scan: Result<Scan, PluginError>,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        let chunk = &batch.lines;
        self.lines += chunk.len();
        let scan = match scan {
            Ok(scan) => scan,
            Err(e) => {
                // One bad batch must not end the run: report and go on.
                eprintln!(
                    "wasmban: lines {}..{} skipped: {e}",
                    chunk.first().map(|l| l.number).unwrap_or(0),
                    chunk.last().map(|l| l.number).unwrap_or(0)
                );
                self.skipped += chunk.len();
                return Ok(());
            }
        };
        let mut per_line: Vec<Vec<&Failure>> = vec![Vec::new(); chunk.len()];
        for f in &scan.failures {
            if let Some(slot) = per_line.get_mut(f.line as usize) {
                slot.push(f);
            }
        }
        for (i, line) in chunk.iter().enumerate() {
            let note = scan.notes.get(i);
            let failures = &per_line[i];
            if let Some(template) = &args.out {
                for f in failures {
                    writeln!(out, "{}", crate::cli::regex_out::line(template, f))?;
                }
            } else if args.json {
                let record = json!({
                    "line": line.number,
                    "time": note.and_then(|n| n.time),
                    "failures": failures.iter().map(|f| failure_json(f)).collect::<Vec<_>>(),
                });
                writeln!(out, "{record}")?;
            }
            // Counted as fail2ban-regex counts: every rule hit (helpers
            // included); a line is ignored when an ignoreregex dropped it
            // or a hit was a helper (even if another hit was a failure),
            // else matched when a hit meant a failure.
            for rule in note.map(|n| n.hits.as_slice()).unwrap_or_default() {
                // A pack's filter has rules but no failregex list.
                let rule = *rule as usize;
                if rule >= self.hits.len() {
                    self.hits.resize(rule + 1, 0);
                }
                self.hits[rule] += 1;
            }
            let (count, texts, wanted, listed_when_few) = if note.is_some_and(|n| n.ignored) {
                (&mut self.ignored, &mut self.ignored_texts, args.print_all_ignored, !args.print_no_ignored)
            } else if note.is_some_and(|n| n.matched) || !failures.is_empty() {
                (&mut self.matched, &mut self.matched_texts, args.print_all_matched, false)
            } else {
                (&mut self.missed, &mut self.missed_texts, args.print_all_missed, !args.print_no_missed)
            };
            *count += 1;
            // fail2ban-regex lists ignored and missed lines when there are
            // few, and says how many otherwise.
            let few = listed_when_few && *count <= args.listed_lines() + 1;
            if wanted || few {
                let text = batch.text_of(line);
                texts.push(match line.number.checked_sub(1).and_then(|i| self.journal_times.get(i)) {
                    Some(time) => format!("{} {text}", crate::cli::regex_out::iso_local(*time)),
                    None => text.to_string(),
                });
            }
        }
        Ok(())
    }

    /// fail2ban-regex's summary.
    fn summary(
        &self,
        out: &mut impl Write,
        args: &RegexArgs,
        definition: &FilterDefinition,
        failregex: &[String],
        elapsed: Option<std::time::Duration>,
    ) -> std::io::Result<()> {
        writeln!(out, "\nRunning tests\n=============\n")?;
        if let Some(maxlines) = args.maxlines {
            writeln!(out, "Use         maxlines : {maxlines}")?;
        }
        let datepattern_line = |pattern: &str| {
            let pattern = pattern.trim();
            if pattern.eq_ignore_ascii_case("{^LN-BEG}") {
                format!("Use      datepattern : {pattern} : Default Detectors")
            } else {
                format!("Use      datepattern : {pattern}")
            }
        };
        if let Some(pattern) = &args.datepattern {
            writeln!(out, "{}", datepattern_line(pattern))?;
        }
        match (definition.files.last(), definition.pack_filter()) {
            (_, Some(filter)) => writeln!(out, "Use   failregex filter pack : {} ({filter})", definition.where_())?,
            (None, None) => writeln!(out, "Use   failregex line : {}", definition.list("failregex").join(" | "))?,
            (Some(file), None) => {
                // fail2ban names a filter and the directory above its filter.d.
                let basedir = file.parent().and_then(Path::parent).map(|d| d.display().to_string()).unwrap_or_default();
                writeln!(out, "Use   failregex filter file : {}, basedir: {basedir}", definition.name)?;
            }
        }
        if let Some(ignore) = &args.ignoreregex {
            writeln!(out, "Use ignoreregex line : {ignore}")?;
        }
        if !definition.files.is_empty() {
            if let (None, Some(maxlines)) = (args.maxlines, definition.get("maxlines")) {
                writeln!(out, "Use         maxlines : {}", maxlines.trim())?;
            }
            if let (None, Some(pattern)) = (&args.datepattern, definition.get("datepattern")) {
                writeln!(out, "{}", datepattern_line(pattern))?;
            }
        }
        if is_journal(&args.log) {
            writeln!(out, "Use         systemd journal")?;
            writeln!(out, "Use         encoding : {}", args.encoding.as_deref().unwrap_or("UTF-8"))?;
            let matches = args.journalmatch.as_deref().or_else(|| definition.get("journalmatch"));
            writeln!(out, "Use    journal match : {}\n\n", matches.unwrap_or_default())?;
        } else if Path::new(&args.log).is_file() {
            writeln!(out, "Use         log file : {}", args.log)?;
            writeln!(out, "Use         encoding : {}\n\n", args.encoding.as_deref().unwrap_or("UTF-8"))?;
        } else {
            writeln!(out, "Use      single line : {}\n\n", args.log)?;
        }
        writeln!(out, "Results\n=======")?;
        if let (Some(n), Some(prefregex)) = (self.prefregex, definition.get("prefregex")) {
            writeln!(out, "\nPrefregex: {n} total")?;
            pprint_list(out, &[python_groups(prefregex)], None)?;
        }
        let hits: Vec<u64> = self.hits.iter().map(|n| *n as u64).collect();
        regex_section(out, "Failregex", &hits, |i| {
            failregex.get(i).cloned().unwrap_or_else(|| format!("(rule {i} of {})", definition.name))
        })?;
        let ignoreregex = definition.list("ignoreregex");
        let mut ignored = self.ignoreregex.clone();
        ignored.resize(ignoreregex.len().max(ignored.len()), 0);
        regex_section(out, "Ignoreregex", &ignored, |i| ignoreregex.get(i).cloned().unwrap_or_default())?;
        writeln!(out, "\nDate template hits:")?;
        let dates: Vec<String> = self.dates.iter().map(|(name, n)| format!("[{n}] {name}")).collect();
        pprint_list(out, &dates, Some("[# of hits] date format"))?;
        writeln!(out)?;
        writeln!(
            out,
            "Lines: {} lines, {} ignored, {} matched, {} missed{}",
            self.lines,
            self.ignored,
            self.matched,
            self.missed,
            if self.skipped > 0 { format!(", {} skipped after filter errors", self.skipped) } else { String::new() }
        )?;
        if let Some(elapsed) = elapsed {
            writeln!(out, "[processed in {:.2} sec]", elapsed.as_secs_f64())?;
        }
        writeln!(out)?;
        let mut print = |kind: &str, count: usize, texts: &[String], all: bool| -> std::io::Result<()> {
            if count == 0 {
                return Ok(());
            }
            let title = format!("{}{} line(s):", kind[..1].to_uppercase(), &kind[1..]);
            if count < args.listed_lines() || all {
                writeln!(out, "|- {title}")?;
                for text in texts {
                    writeln!(out, "|  {}", text.trim_end())?;
                }
                writeln!(out, "`-")
            } else {
                writeln!(out, "{title} too many to print.  Use --print-all-{kind} to print all {count} lines")
            }
        };
        if args.print_all_matched {
            print("matched", self.matched, &self.matched_texts, true)?;
        }
        if !args.print_no_ignored {
            print("ignored", self.ignored, &self.ignored_texts, args.print_all_ignored)?;
        }
        if !args.print_no_missed {
            print("missed", self.missed, &self.missed_texts, args.print_all_missed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn captures_are_shown_as_python_groups() {
        assert_eq!(
            super::python_groups("^<F-MLFID>x</F-MLFID> <F-CONTENT>.+</F-CONTENT>$ <HOST> <F-bad name>"),
            "^(?P<mlfid>x) (?P<content>.+)$ <HOST> <F-bad name>"
        );
    }
}
