//! `wasmban regex`: run a filter over a log file, the way `fail2ban-regex`
//! does, through the same component the daemon uses. `--json` follows the
//! conformance contract: one JSON object per processed line.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::cli::Cli;
use crate::config::filter::FilterDefinition;
use crate::plugin::bindings::types::{Failure, Scan};
use crate::plugin::{PluginError, Registry, Runtime, RuntimeOptions, split};

/// Lines sent to the filter per call.
const BATCH_LINES: usize = 4096;

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
    #[arg(long)]
    pub print_all_missed: bool,
    /// Print the lines an ignoreregex dropped.
    #[arg(long)]
    pub print_all_ignored: bool,
    /// Print the lines that matched.
    #[arg(long)]
    pub print_all_matched: bool,
    /// Cores to use: with 2 (the default, when the machine has them) a
    /// filter that can split its work runs as two instances on two
    /// threads; 1 runs one instance. The answers are the same.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub threads: usize,
    /// Print the resolved filter definition (one `key<TAB>value` line per
    /// option handed to the filter, newlines as \n) and exit.
    #[arg(long)]
    pub print_definition: bool,
    /// The log file to scan.
    pub log: PathBuf,
    /// A filter file path, or the name of a filter in the configuration's filter.d.
    pub filter: String,
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
        Ok(FilterDefinition::load_file(path, params)?)
    } else {
        Ok(FilterDefinition::load(&cli.config_dir, filter, params)?)
    }
}

/// A line of the log: its 1-based number and where it lies in the text.
struct Line {
    number: usize,
    start: usize,
    end: usize,
}

/// The log as text (invalid UTF-8 replaced) and the lines fed to the
/// filter: empty lines and `#` comments are left out, trailing `\r` and
/// `\n` stripped, as fail2ban-regex does.
struct Log {
    text: String,
    lines: Vec<Line>,
}

impl Log {
    fn read(path: &Path) -> anyhow::Result<Log> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read log {}", path.display()))?;
        // Valid UTF-8 (the usual case) is checked in one fast pass and kept
        // as it is; only a log with invalid bytes is copied with them replaced.
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        let mut lines = Vec::with_capacity(text.len() / 80);
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
        for (i, end) in ends.enumerate() {
            let line = text[start..end].trim_end_matches(['\r', '\n']);
            if !line.is_empty() && !line.starts_with('#') {
                lines.push(Line { number: i + 1, start, end: start + line.len() });
            }
            start = end + 1;
        }
        Ok(Log { text, lines })
    }

    fn text_of(&self, line: &Line) -> &str {
        &self.text[line.start..line.end]
    }

    /// The lines of `chunk` joined by newlines: a slice of the log itself
    /// when they follow one another in it (nothing skipped or stripped in
    /// between), a copy otherwise.
    fn batch(&self, chunk: &[Line]) -> Cow<'_, str> {
        let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else { return Cow::Borrowed("") };
        let contiguous = chunk.windows(2).all(|w| w[1].start == w[0].end + 1);
        if contiguous {
            return Cow::Borrowed(&self.text[first.start..last.end]);
        }
        let mut joined = String::new();
        for (i, line) in chunk.iter().enumerate() {
            if i > 0 {
                joined.push('\n');
            }
            joined.push_str(self.text_of(line));
        }
        Cow::Owned(joined)
    }
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
    let params = parse_opts(&args.opts)?;
    let definition = load_definition(cli, &args.filter, &params)?;
    let mut options = definition.component_options()?;
    // fail2ban-regex tries every failregex on every line, so its hit counts
    // are per regex; the daemon stops at the first match.
    options.push(("check-all".into(), "1".into()));
    if args.journal {
        options.push(("journal".into(), "1".into()));
    }
    if args.print_definition {
        for (k, v) in &options {
            println!("{k}\t{}", v.replace('\n', "\\n"));
        }
        return Ok(());
    }
    let registry = Registry::new(Some(cli.plugin_dir()));
    let runtime = Runtime::new(RuntimeOptions { cache_dir: Some(cli.cache_dir()), ..RuntimeOptions::default() })?;
    let plugin = runtime.load_named(&registry, definition.plugin())?;
    let mut filter = plugin
        .filter_for(definition.pack_filter(), options.clone())
        .with_context(|| format!("filter {} ({})", definition.name, definition.where_()))?;

    let now = args.now.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
    });
    let log = Log::read(&args.log)?;
    let lines = &log.lines;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let failregex = definition.list("failregex");
    let mut hits = vec![0usize; failregex.len()];
    let (mut matched, mut ignored, mut missed, mut skipped) = (Vec::new(), Vec::new(), Vec::new(), 0usize);

    let chunks: Vec<&[Line]> = lines.chunks(BATCH_LINES).collect();
    let mut each = |k: usize, scan: Result<Scan, PluginError>| -> anyhow::Result<()> {
        let chunk = chunks[k];
        let scan = match scan {
            Ok(scan) => scan,
            Err(e) => {
                // One bad batch must not end the run: report and go on.
                eprintln!(
                    "wasmban: lines {}..{} skipped: {e}",
                    chunk.first().map(|l| l.number).unwrap_or(0),
                    chunk.last().map(|l| l.number).unwrap_or(0)
                );
                skipped += chunk.len();
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
            if args.json {
                let record = json!({
                    "line": line.number,
                    "time": note.and_then(|n| n.time),
                    "failures": failures.iter().map(|f| failure_json(f)).collect::<Vec<_>>(),
                });
                writeln!(out, "{record}")?;
            }
            // Counted as fail2ban-regex counts: every rule hit (helpers
            // included); a line is matched when a hit meant a failure,
            // ignored when its hits were only helpers or were dropped.
            for rule in note.map(|n| n.hits.as_slice()).unwrap_or_default() {
                // A pack's filter has rules but no failregex list.
                let rule = *rule as usize;
                if rule >= hits.len() {
                    hits.resize(rule + 1, 0);
                }
                hits[rule] += 1;
            }
            if note.is_some_and(|n| n.matched) || !failures.is_empty() {
                matched.push(line);
            } else if note.is_some_and(|n| n.ignored) {
                ignored.push(line);
            } else {
                missed.push(line);
            }
        }
        Ok(())
    };
    // A filter that can split its work runs on two instances, on two
    // cores, when there is more than one batch to share.
    let second = (filter.can_prepare() && chunks.len() > 1 && args.threads > 1 && cores() > 1)
        .then(|| plugin.filter_for(definition.pack_filter(), options.clone()).ok())
        .flatten();
    match second {
        Some(preparer) => {
            let batch = |k: usize| log.batch(chunks[k]);
            split::feed_split(&mut filter, preparer, chunks.len(), BATCH_LINES as u32, &batch, now, true, &mut each)?;
        }
        None => {
            for (k, chunk) in chunks.iter().enumerate() {
                let scan = filter.feed(&log.batch(chunk), now, true);
                each(k, scan)?;
            }
        }
    }
    if args.json {
        out.flush()?;
        return Ok(());
    }
    writeln!(out, "Running tests\n=============\n")?;
    writeln!(out, "Use   failregex filter file : {}", definition.where_())?;
    writeln!(out, "Use         log file : {}\n", args.log.display())?;
    writeln!(out, "Results\n=======\n")?;
    writeln!(out, "Failregex: {} total", hits.iter().sum::<usize>())?;
    writeln!(out, "|-  #) [# of hits] regular expression")?;
    for (i, n) in hits.iter().enumerate() {
        if *n > 0 {
            let rule = failregex.get(i).cloned().unwrap_or_else(|| format!("(rule {i} of {})", definition.name));
            writeln!(out, "|  {:>2}) [{n}] {rule}", i + 1)?;
        }
    }
    writeln!(out, "`-\n")?;
    writeln!(
        out,
        "Lines: {} lines, {} ignored, {} matched, {} missed{}",
        lines.len(),
        ignored.len(),
        matched.len(),
        missed.len(),
        if skipped > 0 { format!(", {skipped} skipped after filter errors") } else { String::new() }
    )?;
    let mut print = |title: &str, set: &[&Line]| -> std::io::Result<()> {
        writeln!(out, "|- {title} line(s):")?;
        for l in set {
            writeln!(out, "|  {}", log.text_of(l))?;
        }
        writeln!(out, "`-")
    };
    if args.print_all_matched {
        print("Matched", &matched)?;
    }
    if args.print_all_ignored {
        print("Ignored", &ignored)?;
    }
    if args.print_all_missed {
        print("Missed", &missed)?;
    }
    out.flush()?;
    Ok(())
}
