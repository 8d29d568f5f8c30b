//! One read of a log for every jail that reads it alike. Jails whose
//! source and filter are the same (several jails on one auth.log with the
//! same filter, banning for different times or with different actions)
//! share one [`Reader`]: the file is read once and each line filtered once
//! (fail2ban reads and filters it once per jail, fail2ban#529), and each
//! jail is handed the same failures, in order, at its own pace. A jail
//! whose reading or filter differs has a reader of its own, and so does a
//! jail that changes either at run time (`set`) or goes idle.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::config::jail::Jail;
use crate::daemon::assemble::{FilterMaker, FilterPlan};
use crate::daemon::jail_thread::BATCH_LINES;
use crate::daemon::read_ahead::{IN_FLIGHT, Pending, Prepared, Preparer};
use crate::plugin::{FilterInstance, PluginError, TrapKind};
use crate::tail::{Batch, Cursor, Progress, Source, Wake};
use crate::wit::types::Failure;

/// Batches read for a jail and not yet taken by it, at most: a jail held
/// up (a slow action) holds up its reader's other jails once this many
/// wait for it, rather than letting memory grow without bound.
pub const MAX_WAITING: usize = 16;
/// Memory traps in one batch after which its lines are no longer split
/// to find the ones at fault.
const MAX_MEMORY_SPLITS: usize = 32;

/// A batch, filtered: what each jail of the reader is handed.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Lines read.
    pub lines: usize,
    /// Lines the filter failed on, lost to it.
    pub skipped: u64,
    /// What the filter found, each with the time it was fed with.
    pub failures: Vec<(Failure, f64)>,
    /// Where reading stands after these lines.
    pub progress: Progress,
}

/// What a jail shows of its source (`status`), as last seen by whoever
/// read: asking the source itself would wait for a read in progress.
#[derive(Debug, Clone, Default)]
pub struct SourceView {
    /// Files followed.
    pub files: Vec<String>,
    /// Files waited for.
    pub waiting: Vec<String>,
    /// `inotify`, `polling` or `systemd`.
    pub backend: &'static str,
    /// Whether lines come from the journal.
    pub is_journal: bool,
    /// Each file with the bytes not yet read from it.
    pub backlog: Vec<(String, u64)>,
}

/// The readers jails share, by what their configuration says they read.
pub struct Readers {
    shared: Mutex<HashMap<String, Weak<Reader>>>,
    cores: usize,
}

impl Default for Readers {
    fn default() -> Readers {
        Readers { shared: Mutex::default(), cores: cores() }
    }
}

/// The cores the daemon may run on: a reader splits a burst's filtering
/// over two ([`crate::daemon::read_ahead`]) only while it has fewer jails
/// than that, since each of its jails works through the burst on a core of
/// its own, and a second instance would only add its overhead.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Readers {
    /// Readers that split bursts over two cores or never, whatever the
    /// machine has.
    #[cfg(test)]
    fn splitting_bursts(split_bursts: bool) -> Readers {
        Readers { shared: Mutex::default(), cores: if split_bursts { usize::MAX } else { 1 } }
    }

    /// A place at the reader of jails configured as `jail` is (a new
    /// reader when none runs). It is opened by the first of them to start.
    pub fn join(&self, jail: &Jail, wake: Wake) -> Subscription {
        let key = share_key(jail);
        let Ok(mut shared) = self.shared.lock() else { return Reader::solo(self.cores).subscribe(wake) };
        shared.retain(|_, reader| reader.strong_count() > 0);
        let reader = match shared.get(&key).and_then(Weak::upgrade) {
            Some(reader) => reader,
            None => {
                let reader = Reader::solo(self.cores);
                shared.insert(key, Arc::downgrade(&reader));
                reader
            }
        };
        reader.subscribe(wake)
    }
}

/// What must be equal for two jails to share a reader, as far as their
/// configuration tells: what their filter component is given (not the
/// filter file's other options, such as the jail's `port`) and what they
/// read. The plans they make are compared again when they open.
fn share_key(jail: &Jail) -> String {
    let flag = |key: &str| jail.options.get(key).map(String::as_str).unwrap_or_default();
    let filter = match &jail.filter {
        Some((_, def)) => format!(
            "{}|{:?}|{:?}|{:?}",
            def.plugin(),
            def.pack_filter(),
            def.get("journalmatch"),
            def.component_options().map_err(|e| e.to_string())
        ),
        None => String::new(),
    };
    format!(
        "{filter}|{:?}|{:?}|{:?}|{}|{}",
        jail.logpath,
        jail.backend,
        jail.logtimezone,
        flag("systemd_if_nologs"),
        flag("skip_if_nologs")
    )
}

/// A source and its filter, read for the jails subscribed to it.
pub struct Reader {
    /// Opened by the first jail to start; `None` until then.
    scanner: Mutex<Option<Scanner>>,
    waiting: Mutex<Waiting>,
    view: Mutex<SourceView>,
    /// See [`cores`].
    cores: usize,
}

struct Scanner {
    source: Source,
    filter: FilterInstance,
    /// What the plan it was opened with was ([`FilterPlan::share_key`]).
    plan: String,
    /// Each file with the bytes not yet read from it, and when that was
    /// measured.
    backlog: (Vec<(String, u64)>, Option<Instant>),
    /// Makes the second instance a burst is split with; None when bursts
    /// are not split (one core, a filter without `prepare`, the journal).
    split: Option<FilterMaker>,
    /// The second instance, from the first burst on.
    preparer: Option<Preparer>,
}

#[derive(Default)]
struct Waiting {
    next_id: u64,
    jails: HashMap<u64, Queue>,
}

struct Queue {
    batches: VecDeque<Arc<Scanned>>,
    wake: Wake,
}

/// Why a jail cannot read with the reader it joined.
pub enum OpenError {
    /// The plan differs from the one the reader was opened with (or reads
    /// the journal, whose cursor is each jail's): open a reader of its own.
    NotShared,
    /// The source or filter could not be opened.
    Failed(String),
}

impl Reader {
    fn solo(cores: usize) -> Arc<Reader> {
        Arc::new(Reader {
            scanner: Mutex::new(None),
            waiting: Mutex::new(Waiting::default()),
            view: Mutex::new(SourceView::default()),
            cores,
        })
    }

    fn subscribe(self: Arc<Reader>, wake: Wake) -> Subscription {
        let id = {
            let mut waiting = lock(&self.waiting);
            let id = waiting.next_id;
            waiting.next_id += 1;
            waiting.jails.insert(id, Queue { batches: VecDeque::new(), wake });
            id
        };
        Subscription { reader: self, id }
    }

    /// Wake every jail of the reader but `except`.
    fn wake_others(&self, except: u64) {
        let wakes: Vec<Wake> =
            lock(&self.waiting).jails.iter().filter(|(id, _)| **id != except).map(|(_, q)| q.wake.clone()).collect();
        for wake in wakes {
            wake();
        }
    }
}

/// A jail's place at a reader; leaving it (drop) forgets the batches
/// waiting for the jail.
pub struct Subscription {
    reader: Arc<Reader>,
    id: u64,
}

impl Subscription {
    /// A reader of the jail's own, opened with `plan` (see [`Subscription::open`]);
    /// it, and where the jail's reading starts.
    pub fn open_alone(
        wake: Wake,
        plan: &FilterPlan,
        make_filter: FilterMaker,
        saved_files: HashMap<std::path::PathBuf, Cursor>,
        saved_journal: Option<String>,
    ) -> Result<(Subscription, Progress), String> {
        let alone = Reader::solo(cores()).subscribe(wake);
        match alone.open(plan, make_filter, saved_files, saved_journal) {
            Ok(progress) => Ok((alone, progress)),
            Err(OpenError::Failed(why)) => Err(why),
            Err(OpenError::NotShared) => Err("a reader of the jail's own would not open".into()),
        }
    }

    /// Open the reader with `plan` if no jail has yet; otherwise check that
    /// `plan` is the one it was opened with. `saved_files` and
    /// `saved_journal` are where reading stood. Where the jail's reading
    /// starts (its first batch follows it).
    pub fn open(
        &self,
        plan: &FilterPlan,
        make_filter: FilterMaker,
        saved_files: HashMap<std::path::PathBuf, Cursor>,
        saved_journal: Option<String>,
    ) -> Result<Progress, OpenError> {
        let shared = lock(&self.reader.waiting).jails.len() > 1;
        let mut scanner = lock(&self.reader.scanner);
        let key = plan.share_key();
        if let Some(open) = scanner.as_mut() {
            // A journal's cursor is saved for each jail: not shared.
            return if open.plan == key && !open.source.is_journal() {
                // Batches read since the jail took its place wait for it:
                // it starts where the first of them does, which its first
                // batch tells (nothing to save until then).
                // So do batches read ahead for a burst's second instance.
                let waiting = lock(&self.reader.waiting).jails.get(&self.id).is_some_and(|q| !q.batches.is_empty())
                    || open.preparer.as_ref().is_some_and(|p| p.pending() > 0);
                Ok(if waiting { Progress::default() } else { open.source.progress() })
            } else {
                Err(OpenError::NotShared)
            };
        }
        if shared && plan.source.is_journal() {
            return Err(OpenError::NotShared);
        }
        let wakes = Arc::downgrade(&self.reader);
        let wake: Wake = Arc::new(move || {
            if let Some(reader) = wakes.upgrade() {
                reader.wake_others(u64::MAX);
            }
        });
        let source = Source::open(&plan.source, saved_files, saved_journal, wake).map_err(OpenError::Failed)?;
        let filter = make_filter().map_err(OpenError::Failed)?;
        let split = self.reader.cores > 1 && plan.can_prepare() && !source.is_journal();
        let mut opened = Scanner {
            source,
            filter,
            plan: key,
            backlog: (Vec::new(), None),
            split: split.then_some(make_filter),
            preparer: None,
        };
        opened.measure();
        *lock(&self.reader.view) = opened.view();
        let progress = opened.source.progress();
        *scanner = Some(opened);
        Ok(progress)
    }

    /// The next batch for this jail, read and filtered now if none waits
    /// (`jail` names it in the log); `None` when there is nothing new, or
    /// when another jail of the reader has [`MAX_WAITING`] batches to take.
    pub fn next(&self, jail: &str, now: f64) -> Option<Arc<Scanned>> {
        if let Some(batch) = self.take() {
            return Some(batch);
        }
        let mut reading = lock(&self.reader.scanner);
        // Another jail may have read while this one waited for the lock.
        if let Some(batch) = self.take() {
            return Some(batch);
        }
        let scanner = reading.as_mut()?;
        let jails = {
            let waiting = lock(&self.reader.waiting);
            if waiting.jails.values().any(|q| q.batches.len() >= MAX_WAITING) {
                return None;
            }
            waiting.jails.len()
        };
        let scanned = Arc::new(scanner.next(jail, now, jails < self.reader.cores)?);
        *lock(&self.reader.view) = scanner.view();
        let others = {
            let mut waiting = lock(&self.reader.waiting);
            let mut others = false;
            for (id, queue) in waiting.jails.iter_mut() {
                if *id != self.id {
                    queue.batches.push_back(scanned.clone());
                    others = true;
                }
            }
            others
        };
        drop(reading);
        if others {
            self.reader.wake_others(self.id);
        }
        Some(scanned)
    }

    fn take(&self) -> Option<Arc<Scanned>> {
        let (batch, was_full) = {
            let mut waiting = lock(&self.reader.waiting);
            let queue = waiting.jails.get_mut(&self.id)?;
            let was_full = queue.batches.len() >= MAX_WAITING;
            (queue.batches.pop_front()?, was_full)
        };
        if was_full {
            // The jails that stopped reading for this one may go on.
            self.reader.wake_others(self.id);
        }
        Some(batch)
    }

    /// How many jails read with this reader.
    pub fn jails(&self) -> usize {
        lock(&self.reader.waiting).jails.len()
    }

    /// The source as last seen.
    pub fn view(&self) -> SourceView {
        lock(&self.reader.view).clone()
    }

    /// Look for new files, unless another jail is reading now.
    pub fn rescan(&self) {
        if let Ok(mut scanner) = self.reader.scanner.try_lock()
            && let Some(scanner) = scanner.as_mut()
        {
            scanner.source.rescan();
            *lock(&self.reader.view) = scanner.view();
        }
    }

    /// Measure how far behind each file is (a stat per file), unless
    /// another jail is reading now, or, but when `now`, it was measured
    /// less than a second ago.
    pub fn measure_backlog(&self, now: bool) {
        if let Ok(mut scanner) = self.reader.scanner.try_lock()
            && let Some(scanner) = scanner.as_mut()
            && (now || scanner.backlog.1.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)))
        {
            scanner.measure();
            *lock(&self.reader.view) = scanner.view();
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let was_full =
            lock(&self.reader.waiting).jails.remove(&self.id).is_some_and(|q| q.batches.len() >= MAX_WAITING);
        if was_full {
            self.reader.wake_others(self.id);
        }
    }
}

impl Scanner {
    fn measure(&mut self) {
        self.backlog = (self.source.backlog(), Some(Instant::now()));
    }

    fn view(&self) -> SourceView {
        SourceView {
            files: self.source.files(),
            waiting: self.source.waiting(),
            backend: self.source.backend_name(),
            is_journal: self.source.is_journal(),
            backlog: self.backlog.0.clone(),
        }
    }

    /// The next batch, read and filtered; None when there is nothing new.
    /// A burst is split over two cores when `may_split`.
    fn next(&mut self, jail: &str, now: f64, may_split: bool) -> Option<Scanned> {
        if self.preparer.is_some() {
            return self.next_prepared(jail, now);
        }
        let batch = self.source.read(BATCH_LINES);
        if batch.lines.count == 0 {
            return None;
        }
        let scanned = self.scan(jail, &batch, now);
        if batch.lines.count >= BATCH_LINES
            && may_split
            && let Some(make) = self.split.take()
        {
            self.start_preparer(jail, &make, &batch, now);
        }
        Some(scanned)
    }

    /// A burst starts: from the next batch on, its filtering is split with
    /// a second instance. The first, `last`, primes it.
    fn start_preparer(&mut self, jail: &str, make: &FilterMaker, last: &Batch, now: f64) {
        match make().and_then(|instance| {
            Preparer::start(jail, instance, BATCH_LINES, Some((&last.lines.text, now))).map_err(|e| e.to_string())
        }) {
            Ok(preparer) => {
                tracing::debug!("[{jail}] a burst: its filtering is split over two cores");
                self.preparer = Some(preparer);
            }
            Err(e) => {
                tracing::warn!("[{jail}] a burst is filtered on one core: no second instance of the filter ({e})")
            }
        }
    }

    /// [`Scanner::next`] with the preparer: batches are handed to it up to
    /// [`IN_FLIGHT`] ahead, and the oldest is fed with what it found.
    fn next_prepared(&mut self, jail: &str, now: f64) -> Option<Scanned> {
        let preparer = self.preparer.as_mut()?;
        while preparer.alive() && preparer.pending() < IN_FLIGHT {
            let batch = self.source.read(BATCH_LINES);
            let lines = batch.lines.count;
            if lines == 0 {
                break;
            }
            preparer.hand(Pending { text: Arc::new(batch.lines.text), lines, now, progress: batch.progress });
            // A batch short of full: the burst is read to its end.
            if lines < BATCH_LINES {
                break;
            }
        }
        let (batch, prepared) = preparer.take()?;
        if !preparer.alive() && preparer.pending() == 0 {
            // Back to one instance, which goes on from its own detector.
            self.preparer = None;
        }
        let mut scanned = Scanned { lines: batch.lines, progress: batch.progress, ..Scanned::default() };
        let mut memory_traps = 0;
        let at = batch.now;
        match prepared {
            Prepared::Ready(prepared) => match self.filter.feed_prepared(&batch.text, at, false, &prepared) {
                Ok(scan) => scanned.failures.extend(scan.failures.into_iter().map(|f| (f, at))),
                Err(e) => self.scan_failed(jail, &batch.text, batch.lines, at, e, &mut scanned, &mut memory_traps),
            },
            Prepared::Failed(e) => {
                tracing::warn!("[{jail}] the filter's second instance failed ({e}); the first filters the batch alone");
                self.scan_lines(jail, &batch.text, batch.lines, at, &mut scanned, &mut memory_traps);
            }
            Prepared::Gone => {
                tracing::warn!(
                    "[{jail}] the filter's second instance stopped; going on with one: dates from here on may differ from a run with one"
                );
                self.scan_lines(jail, &batch.text, batch.lines, at, &mut scanned, &mut memory_traps);
            }
        }
        Some(scanned)
    }

    /// What the filter finds in `batch`.
    fn scan(&mut self, jail: &str, batch: &Batch, now: f64) -> Scanned {
        let mut scanned = Scanned { lines: batch.lines.count, ..Scanned::default() };
        let mut memory_traps = 0;
        for (range, lines, at) in time_groups(batch, now) {
            self.scan_lines(jail, &batch.lines.text[range], lines, at, &mut scanned, &mut memory_traps);
        }
        scanned.progress = batch.progress.clone();
        scanned
    }

    /// Feed `lines` to the filter, adding what it finds to `scanned`.
    /// When the filter runs out of its memory on them, the lines are split
    /// in halves and tried again, so that only the lines that cause it are
    /// lost (and counted), not the genuine failures around them; after
    /// [`MAX_MEMORY_SPLITS`] such traps in one batch the rest is dropped,
    /// so that a filter that always runs out cannot stall its jails.
    fn scan_lines(
        &mut self,
        jail: &str,
        text: &str,
        lines: usize,
        at: f64,
        scanned: &mut Scanned,
        memory_traps: &mut usize,
    ) {
        match self.filter.feed(text, at, false) {
            Ok(scan) => scanned.failures.extend(scan.failures.into_iter().map(|f| (f, at))),
            Err(e) => self.scan_failed(jail, text, lines, at, e, scanned, memory_traps),
        }
    }

    /// The filter failed on `text` (`lines` lines) with `e`: a memory trap
    /// splits them (see [`Scanner::scan_lines`]), anything else loses them.
    #[allow(clippy::too_many_arguments)]
    fn scan_failed(
        &mut self,
        jail: &str,
        text: &str,
        lines: usize,
        at: f64,
        e: PluginError,
        scanned: &mut Scanned,
        memory_traps: &mut usize,
    ) {
        if e.trap_kind() == Some(TrapKind::Memory)
            && lines > 1
            && *memory_traps < MAX_MEMORY_SPLITS
            && let Some(cut) = memchr::memchr_iter(b'\n', text.as_bytes()).nth(lines / 2 - 1)
        {
            *memory_traps += 1;
            tracing::warn!("[{jail}] {e}; trying its {lines} line(s) again in halves");
            self.scan_lines(jail, &text[..cut], lines / 2, at, scanned, memory_traps);
            self.scan_lines(jail, &text[cut + 1..], lines - lines / 2, at, scanned, memory_traps);
            return;
        }
        // The filter instance is rebuilt before the next call; these lines
        // are lost to it, and the log and status say so.
        scanned.skipped += lines as u64;
        tracing::error!("[{jail}] filter failed on {lines} line(s), which are skipped: {e}");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A jail thread that panicked holding it left the data whole: every
    // change under these locks is one assignment or one queue operation.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs of lines fed to the filter with one "now": the whole batch for
/// files (their lines carry dates), runs of journal entries from the same
/// second (the journal's time is the lines' time).
/// Each run is its bytes in the batch's text, its line count and its time.
fn time_groups(batch: &Batch, now: f64) -> Vec<(std::ops::Range<usize>, usize, f64)> {
    let Some(times) = &batch.times else { return vec![(0..batch.lines.text.len(), batch.lines.count, now)] };
    // Where each line starts, and where the text ends.
    let starts: Vec<usize> = std::iter::once(0)
        .chain(memchr::memchr_iter(b'\n', batch.lines.text.as_bytes()).map(|nl| nl + 1))
        .chain(std::iter::once(batch.lines.text.len() + 1))
        .collect();
    let mut groups = Vec::new();
    let mut first = 0;
    for i in 1..=times.len().min(starts.len() - 1) {
        if i == times.len() || times[i].floor() != times[first].floor() {
            groups.push((starts[first]..starts[i] - 1, i - first, times[first]));
            first = i;
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::config::jail::Jails;
    use crate::daemon::assemble::plan_filter;
    use crate::plugin::{Registry, Runtime, RuntimeOptions};
    use crate::tail::Joined;

    /// Two jails `a` and `b` alike on `log` (read from its head).
    fn two_jails(dir: &std::path::Path, log: &std::path::Path) -> Vec<Jail> {
        std::fs::create_dir_all(dir.join("filter.d")).unwrap();
        std::fs::write(dir.join("filter.d/f.conf"), "[Definition]\nfailregex = ^fail from <HOST>$\n").unwrap();
        let jail = |name: &str| format!("[{name}]\nenabled = true\nfilter = f\nlogpath = {} head\n", log.display());
        std::fs::write(dir.join("jail.conf"), format!("[DEFAULT]\naction =\n{}{}", jail("a"), jail("b"))).unwrap();
        let (jails, errors) = Jails::load(dir).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        jails.enabled
    }

    fn counting_wake() -> (Wake, Arc<AtomicUsize>) {
        let woken = Arc::new(AtomicUsize::new(0));
        let count = woken.clone();
        let wake: Wake = Arc::new(move || {
            count.fetch_add(1, Ordering::SeqCst);
        });
        (wake, woken)
    }

    #[test]
    fn each_jail_gets_every_batch_once_and_a_slow_one_holds_the_others_at_max_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        let batches = MAX_WAITING + 2;
        let text: String = (0..batches * BATCH_LINES).map(|i| format!("fail from 192.0.2.{}\n", i % 200 + 1)).collect();
        std::fs::write(&log, text).unwrap();
        let jails = two_jails(dir.path(), &log);
        let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
        let readers = Readers::default();
        let (wake_a, woken_a) = counting_wake();
        let (wake_b, _) = counting_wake();
        let a = readers.join(&jails[0], wake_a);
        let b = readers.join(&jails[1], wake_b);
        assert_eq!(a.jails(), 2);
        for (jail, seat) in jails.iter().zip([&a, &b]) {
            let plan = plan_filter(jail, &runtime, &Registry::new(None)).unwrap();
            let opened = seat.open(&plan, plan.maker_for(jail), HashMap::new(), None);
            assert!(opened.is_ok(), "{} could not open", jail.name);
        }

        // A jail that opens with a batch already waiting for it starts
        // where that batch does: no position of its own to save yet.
        let (wake_c, _) = counting_wake();
        let c = readers.join(&jails[1], wake_c);
        let plan = plan_filter(&jails[1], &runtime, &Registry::new(None)).unwrap();
        assert!(c.open(&plan, plan.maker_for(&jails[1]), HashMap::new(), None).is_ok_and(|p| p != Progress::default()));
        let first_of_a = a.next("a", 0.0).unwrap();
        let d = readers.join(&jails[1], counting_wake().0);
        a.next("a", 0.0).unwrap();
        assert!(d.open(&plan, plan.maker_for(&jails[1]), HashMap::new(), None).is_ok_and(|p| p == Progress::default()));
        assert_eq!(c.next("c", 0.0).unwrap().progress, first_of_a.progress);
        drop((c, d));

        // `a` reads while `b` takes nothing: `a` is held once `b` has
        // MAX_WAITING batches waiting.
        let mut read_by_a = 2;
        while let Some(batch) = a.next("a", 0.0) {
            assert_eq!(batch.failures.len(), BATCH_LINES);
            read_by_a += 1;
        }
        assert_eq!(read_by_a, MAX_WAITING);
        // `b` taking one wakes `a`, which reads on.
        let before = woken_a.load(Ordering::SeqCst);
        let first = b.next("b", 0.0).unwrap();
        assert_eq!(first.lines, BATCH_LINES);
        assert!(woken_a.load(Ordering::SeqCst) > before);
        assert!(a.next("a", 0.0).is_some());
        // Every batch reaches `b` once, in order, through the queue or read by `b` itself.
        let mut read_by_b = 1;
        let mut last = first.progress.files[0].1.offset;
        while let Some(batch) = b.next("b", 0.0) {
            let offset = batch.progress.files[0].1.offset;
            assert!(offset > last);
            last = offset;
            read_by_b += 1;
        }
        assert_eq!(read_by_b, batches);
        while a.next("a", 0.0).is_some() {
            read_by_a += 1;
        }
        assert_eq!(read_by_a + 1, batches);

        // A jail that leaves lets the others go on without it.
        drop(b);
        assert_eq!(a.jails(), 1);
    }

    #[test]
    fn journal_entries_are_fed_in_runs_of_one_second_and_file_lines_at_once() {
        let text = "a\nbb\nccc\nd".to_string();
        let journal = Batch {
            lines: Joined { text: text.clone(), count: 4 },
            times: Some(vec![1.2, 1.7, 2.1, 5.0]),
            ..Batch::default()
        };
        let groups = time_groups(&journal, 9.0);
        assert_eq!(groups, [(0..4, 2, 1.2), (5..8, 1, 2.1), (9..10, 1, 5.0)]);
        let parts: Vec<&str> = groups.iter().map(|(range, _, _)| &text[range.clone()]).collect();
        assert_eq!(parts, ["a\nbb", "ccc", "d"]);
        let file = Batch { lines: Joined { text, count: 4 }, ..Batch::default() };
        assert_eq!(time_groups(&file, 9.0), [(0..10, 4, 9.0)]);
    }

    /// Every failure `readers` finds in `log` for a jail alone, each with
    /// the batch's line count and position, and whether the burst was
    /// split.
    fn read_all(dir: &std::path::Path, log: &std::path::Path, readers: &Readers) -> (Vec<String>, bool) {
        std::fs::create_dir_all(dir.join("filter.d")).unwrap();
        let filter = "[Definition]\nfailregex = fail(?:ed)? (?:for \\S+ )?from <HOST>(?: port \\d+)?$\n";
        std::fs::write(dir.join("filter.d/f.conf"), filter).unwrap();
        let jail = format!("[DEFAULT]\naction =\n[a]\nenabled = true\nfilter = f\nlogpath = {} head\n", log.display());
        std::fs::write(dir.join("jail.conf"), jail).unwrap();
        let (jails, errors) = Jails::load(dir).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
        let plan = plan_filter(&jails.enabled[0], &runtime, &Registry::new(None)).unwrap();
        let a = readers.join(&jails.enabled[0], counting_wake().0);
        assert!(a.open(&plan, plan.maker_for(&jails.enabled[0]), HashMap::new(), None).is_ok());
        let mut found = Vec::new();
        let mut split = false;
        while let Some(batch) = a.next("a", 1_796_515_200.0) {
            split |= lock(&a.reader.scanner).as_ref().is_some_and(|s| s.preparer.is_some());
            found.push(format!("batch of {} to {:?}", batch.lines, batch.progress));
            for (failure, at) in &batch.failures {
                found.push(format!("{} {:?} {at} {:?}", failure.host, failure.time, failure.matches));
            }
        }
        (found, split)
    }

    #[test]
    fn a_burst_split_over_two_instances_finds_what_one_finds() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        // Dates of two formats in the last minute, lines with none (which
        // take the last one's, the first of each batch among them: the
        // second instance must know it), failures and other lines, in a
        // burst of several batches and a short last one.
        let text: String = (0..BATCH_LINES * 7 / 2)
            .map(|i| {
                let s = 20 + i % 30;
                let ip = format!("198.51.100.{}", i % 250 + 1);
                match if i % BATCH_LINES == 0 { 2 } else { i % 7 } {
                    0 => format!("Dec  5 23:59:{s:02} host sshd[1]: failed for root from {ip} port 22\n"),
                    1 => format!("2026-12-05 23:59:{s:02} fail from {ip}\n"),
                    2 => format!("fail from {ip}\n"),
                    3 => format!("Dec  5 23:59:{s:02} host sshd[1]: Accepted key for root from {ip}\n"),
                    _ => format!("2026-12-05 23:59:{s:02} failed from {ip} port {i}\n"),
                }
            })
            .collect();
        std::fs::write(&log, text).unwrap();
        let (one, one_split) = read_all(&dir.path().join("one"), &log, &Readers::splitting_bursts(false));
        let (two, two_split) = read_all(&dir.path().join("two"), &log, &Readers::splitting_bursts(true));
        assert!(!one_split && two_split, "one split: {one_split}, two split: {two_split}");
        assert!(one.len() > BATCH_LINES * 3, "{} failures", one.len());
        assert_eq!(one.len(), two.len());
        for (k, (a, b)) in one.iter().zip(&two).enumerate() {
            assert_eq!(a, b, "entry {k}");
        }
    }
}
