//! Unit tests of the index verbs and reads, fed directly with decoded objects.

use std::time::Duration;

use super::*;
use crate::decode::{Limits, SchemaRegistry};
use crate::fixtures::{Cm, Doc};
use crate::model::{Phase, Reason, ReasonCode, Resource};
use crate::query::{self, Cursor, CursorError, ExecutionFilter, Listing, NameCursor, Scope};
use crate::wire::Json;

fn registry() -> SchemaRegistry {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    SchemaRegistry::load(&dir, Limits::default()).unwrap()
}

fn exec(ns: &str, name: &str, doc: Doc) -> Decoded {
    registry().decode(&Cm::new(ns, name).doc(&doc).build())
}

/// One page as the API assembles it with no archive.
struct Page {
    items: Vec<Json>,
    next: Option<Cursor>,
}

fn list(index: &Index, filter: &ExecutionFilter, after: Option<&Cursor>, limit: usize) -> Page {
    let (live, _) = index.listing(filter, after.map(Cursor::position).as_ref(), limit);
    let (items, next) = query::merge(live, Listing::default(), limit);
    Page { items, next: next.map(|at| Cursor::at(at, filter)) }
}

fn names(index: &Index, filter: &ExecutionFilter) -> Vec<String> {
    list(index, filter, None, 500)
        .items
        .iter()
        .map(|b| serde_json::from_slice::<serde_json::Value>(&b.bytes).unwrap()["name"].as_str().unwrap().to_owned())
        .collect()
}

fn rejected(ns: &str, name: &str) -> Decoded {
    Err(Rejection {
        id: ObjectRef { namespace: ns.into(), name: name.into() },
        file: None,
        resource_version: "1".into(),
        reasons: vec![Reason::new(ReasonCode::NoDocument, "none")],
    })
}

#[test]
fn lists_newest_first_with_a_stable_tie_break() {
    let index = Index::new(Duration::from_secs(60));
    index.register("a", Some("a"));
    let at = |t: &str| Doc::new("p").started_at(t);
    index.reset(
        "a",
        vec![
            exec("a", "old", at("2026-01-01T00:00:00Z")),
            exec("a", "new-b", at("2026-02-01T00:00:00Z")),
            exec("a", "new-a", at("2026-02-01T00:00:00Z")),
        ],
    );
    assert_eq!(names(&index, &ExecutionFilter::default()), ["new-a", "new-b", "old"]);
}

#[test]
fn reset_swaps_in_a_relist_and_drops_what_it_lacks() {
    let index = Index::new(Duration::from_secs(60));
    index.register("a", Some("a"));
    index.register("b", Some("b"));
    index.reset("a", vec![exec("a", "one", Doc::new("p")), exec("a", "two", Doc::new("p")), rejected("a", "bad")]);
    index.reset("b", vec![exec("b", "three", Doc::new("p"))]);
    let before = index.revision();
    index.reset("a", vec![exec("a", "two", Doc::new("p"))]);
    assert!(index.revision() > before);
    let mut all = names(&index, &ExecutionFilter::default());
    all.sort();
    assert_eq!(all, ["three", "two"], "shard b untouched, shard a replaced");
    assert!(index.rejections(None, &Scope::all(), None, 10).items.is_empty());
}

#[test]
fn a_rejection_replaces_the_execution_and_a_fix_brings_it_back() {
    let index = Index::new(Duration::from_secs(60));
    index.register("a", Some("a"));
    index.reset("a", vec![exec("a", "one", Doc::new("p"))]);
    index.apply("a", rejected("a", "one"));
    assert!(names(&index, &ExecutionFilter::default()).is_empty());
    assert_eq!(index.rejections(Some("a"), &Scope::all(), None, 10).items.len(), 1);
    index.apply("a", exec("a", "one", Doc::new("p")));
    assert_eq!(names(&index, &ExecutionFilter::default()), ["one"]);
    assert!(index.rejections(None, &Scope::all(), None, 10).items.is_empty());
    index.delete(&ObjectRef { namespace: "a".into(), name: "one".into() });
    assert!(names(&index, &ExecutionFilter::default()).is_empty());
}

#[test]
fn filters_combine() {
    let index = Index::new(Duration::from_secs(60));
    index.register("a", Some("a"));
    index.reset(
        "a",
        vec![
            exec("a", "x", Doc::new("web").phase("Failed").environments(&[("dev", "Failed")])),
            exec("a", "y", Doc::new("web").phase("Succeeded")),
            exec("a", "z", Doc::new("api").phase("Failed")),
        ],
    );
    let f = |p: Option<&str>, ph: Option<Phase>, env: Option<&str>| ExecutionFilter {
        pipeline: p.map(Into::into),
        phase: ph,
        environment: env.map(Into::into),
        ..ExecutionFilter::default()
    };
    assert_eq!(names(&index, &f(Some("web"), None, None)).len(), 2);
    assert_eq!(names(&index, &f(Some("web"), Some(Phase::Failed), None)), ["x"]);
    assert_eq!(names(&index, &f(None, None, Some("prod"))).len(), 2);
}

#[test]
fn pages_stay_consistent_while_data_changes() {
    let index = Index::new(Duration::from_secs(60));
    index.register("a", Some("a"));
    let doc = |day: u32| Doc::new("p").started_at(&format!("2026-01-{day:02}T00:00:00Z"));
    index.reset("a", (1..=9).map(|d| exec("a", &format!("r{d}"), doc(d))).collect());
    let filter = ExecutionFilter::default();
    let first = list(&index, &filter, None, 4);
    assert_eq!(first.items.len(), 4);
    // Newer runs arrive and an already-served one is deleted between pages.
    index.apply("a", exec("a", "r10", doc(10)));
    index.delete(&ObjectRef { namespace: "a".into(), name: "r9".into() });
    let cursor = Cursor::decode(&first.next.unwrap().encode(), &filter).unwrap();
    let second = list(&index, &filter, Some(&cursor), 10);
    let got: Vec<String> = second
        .items
        .iter()
        .map(|b| serde_json::from_slice::<serde_json::Value>(&b.bytes).unwrap()["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["r5", "r4", "r3", "r2", "r1"]);
    assert!(second.next.is_none());
    let other = ExecutionFilter { pipeline: Some("q".into()), ..ExecutionFilter::default() };
    let token = list(&index, &filter, None, 1).next.unwrap().encode();
    assert_eq!(Cursor::decode(&token, &other), Err(CursorError::OtherFilter));
    assert_eq!(Cursor::decode("%%%", &filter), Err(CursorError::Malformed));
}

#[test]
fn pipelines_resolve_latest_run_environments_and_counts() {
    let index = Index::new(Duration::from_secs(60));
    index.register("a", Some("a"));
    index.reset(
        "a",
        vec![
            exec(
                "a",
                "r1",
                Doc::new("web")
                    .version("1.0")
                    .phase("Succeeded")
                    .started_at("2026-01-01T00:00:00Z")
                    .environments(&[("dev", "Succeeded"), ("prod", "Succeeded")]),
            ),
            exec(
                "a",
                "r2",
                Doc::new("web")
                    .version("2.0")
                    .phase("Running")
                    .started_at("2026-01-02T00:00:00Z")
                    .environments(&[("dev", "Running"), ("prod", "Pending")]),
            ),
        ],
    );
    let resolved = index.pipelines(None, &Scope::all(), None, 10, false);
    assert_eq!(resolved.items.len(), 1);
    let p: serde_json::Value = serde_json::from_slice(&resolved.items[0].bytes).unwrap();
    assert_eq!((&p["namespace"], &p["name"]), (&serde_json::json!("a"), &serde_json::json!("web")));
    assert_eq!(p["latestExecution"]["name"], "r2");
    assert_eq!(
        p["environments"][0],
        serde_json::json!({"name": "dev", "phase": "Running", "version": "2.0", "execution": "r2"})
    );
    assert_eq!(
        p["environments"][1],
        serde_json::json!({"name": "prod", "phase": "Succeeded", "version": "1.0", "execution": "r1"})
    );
    assert_eq!(p["counts"]["Running"], 1);
    assert_eq!(p["counts"]["Succeeded"], 1);
    assert_eq!(p["executionCount"], 2);
}

#[test]
fn completeness_names_unsynced_and_failing_sources() {
    let index = Index::new(Duration::ZERO);
    index.register("a", Some("a"));
    index.register("b", Some("b"));
    index.reset("a", Vec::<Listed>::new());
    assert!(!index.settled(), "b has not synced");
    index.fail("b", "forbidden".into(), true);
    assert!(index.settled(), "a refusal is reported, not waited for");
    let c = index.freshness(None, &Scope::all());
    assert!(!c.complete);
    assert_eq!(c.incomplete_sources[0].source, "b");
    assert!(index.freshness(Some("a"), &Scope::all()).complete);
    index.fail("a", "connection refused".into(), false);
    std::thread::sleep(Duration::from_millis(2));
    assert!(index.freshness(Some("a"), &Scope::all()).stale, "a failing source past the bound is stale");
}

#[test]
fn writes_for_an_unregistered_shard_are_ignored() {
    let index = Index::new(Duration::from_secs(60));
    index.apply("gone", exec("a", "late", Doc::new("p")));
    index.reset("gone", vec![exec("a", "later", Doc::new("p"))]);
    index.fail("gone", "error".into(), true);
    assert_eq!(index.counts(), (0, 0));
    assert!(index.shards().is_empty());
}

/// Every page walked through `continue`, as names.
fn walk(index: &Index, filter: &ExecutionFilter, limit: usize) -> Vec<String> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = list(index, filter, after.as_ref(), limit);
        all.extend(
            page.items
                .iter()
                .map(|b| serde_json::from_slice::<serde_json::Value>(&b.bytes).unwrap()["name"].to_string()),
        );
        match page.next {
            Some(next) => after = Some(Cursor::decode(&next.encode(), filter).unwrap()),
            None => return all,
        }
    }
}

#[test]
fn indexed_filters_page_exactly_like_a_full_scan() {
    let index = Index::new(Duration::from_secs(60));
    let registry = registry();
    let phases = ["Running", "Succeeded", "Failed"];
    for ns in ["a", "b", "c"] {
        index.register(ns, Some(ns));
        let runs: Vec<Decoded> = (0..60)
            .map(|i| {
                let doc = Doc::new(&format!("p{}", i % 4))
                    .phase(phases[i % 3])
                    .started_at(&format!("2026-01-{:02}T{:02}:00:00Z", 1 + i % 5, i % 24))
                    .environments(&[(if i % 2 == 0 { "dev" } else { "prod" }, "Succeeded")]);
                let cm = Cm::new(ns, &format!("r{i}")).label("team", ["x", "y", "z"][i % 3]).doc(&doc);
                registry.decode(&cm.build())
            })
            .collect();
        index.reset(ns, runs);
    }
    let everything = walk(&index, &ExecutionFilter::default(), 500);
    assert_eq!(everything.len(), 180);
    let filters = [
        ExecutionFilter { namespace: Some("b".into()), ..ExecutionFilter::default() },
        ExecutionFilter { pipeline: Some("p1".into()), ..ExecutionFilter::default() },
        ExecutionFilter { namespace: Some("c".into()), pipeline: Some("p2".into()), ..ExecutionFilter::default() },
        ExecutionFilter { phase: Some(Phase::Failed), environment: Some("dev".into()), ..ExecutionFilter::default() },
        ExecutionFilter { labels: Some("team in (x,z)".parse().unwrap()), ..ExecutionFilter::default() },
        ExecutionFilter {
            labels: Some("team=y,team!=x".parse().unwrap()),
            phase: Some(Phase::Running),
            ..ExecutionFilter::default()
        },
        ExecutionFilter { scope: Scope::only(["a".to_owned(), "c".to_owned()].into()), ..ExecutionFilter::default() },
        ExecutionFilter { pipeline: Some("missing".into()), ..ExecutionFilter::default() },
    ];
    for filter in filters {
        // The brute force: every execution, newest first, through the filter alone.
        let expected: Vec<String> =
            index.read().order.values().filter(|e| filter.matches(&***e)).map(|e| format!("{:?}", e.id.name)).collect();
        assert!(expected.len() < 180, "{filter:?} filters something");
        assert_eq!(walk(&index, &filter, 7), expected, "{filter:?}");
    }
}

#[test]
fn pipelines_follow_their_executions_and_page() {
    let index = Index::new(Duration::from_secs(60));
    index.register("a", Some("a"));
    index.reset("a", (0..5).map(|i| exec("a", &format!("r{i}"), Doc::new(&format!("p{i}")))).collect());
    let names = |page: &PipelinePage| -> Vec<String> {
        page.items
            .iter()
            .map(|b| serde_json::from_slice::<serde_json::Value>(&b.bytes).unwrap()["name"].to_string())
            .collect()
    };
    let first = index.pipelines(Some("a"), &Scope::all(), None, 3, false);
    assert_eq!(names(&first), ["\"p0\"", "\"p1\"", "\"p2\""]);
    let token = first.next.unwrap().encode();
    assert_eq!(NameCursor::decode(&token, Resource::Pipelines, None), Err(CursorError::OtherFilter));
    assert_eq!(NameCursor::decode(&token, Resource::Rejections, Some("a")), Err(CursorError::OtherFilter));
    let after = NameCursor::decode(&token, Resource::Pipelines, Some("a")).unwrap();
    index.delete(&ObjectRef { namespace: "a".into(), name: "r3".into() });
    let second = index.pipelines(Some("a"), &Scope::all(), Some(&after), 3, false);
    assert_eq!(names(&second), ["\"p4\""], "a pipeline goes with its last execution");
    assert!(second.next.is_none());
    let before = index.pipeline("a", "p1").unwrap().revision;
    index.apply("a", exec("a", "r9", Doc::new("p0")));
    assert_eq!(index.pipeline("a", "p1").unwrap().revision, before, "another pipeline's change leaves it alone");
    let p0: serde_json::Value =
        serde_json::from_slice(&index.pipeline("a", "p0").unwrap().live.as_ref().unwrap().bytes).unwrap();
    assert_eq!(p0["executionCount"], 2);
    assert!(index.pipelines(None, &Scope::only(["b".to_owned()].into()), None, 10, false).items.is_empty());
}

#[test]
fn a_partial_scope_walks_only_the_namespaces_it_may_read() {
    let index = Index::new(Duration::from_secs(60));
    index.register("mine", Some("mine"));
    index.register("theirs", Some("theirs"));
    // `rare` is small cluster-wide, but nearly all of it is in a namespace the caller may not
    // read: walking its cluster-wide posting would take time that grows with theirs.
    let mine: Vec<_> = (0..20).map(|i| exec("mine", &format!("m{i}"), Doc::new("common"))).collect();
    let mut theirs: Vec<_> = (0..5).map(|i| exec("theirs", &format!("t{i}"), Doc::new("rare"))).collect();
    theirs.push(exec("theirs", "t-common", Doc::new("common")));
    index.reset("mine", [mine, vec![exec("mine", "m-rare", Doc::new("rare"))]].concat());
    index.reset("theirs", theirs);
    let scope = Scope::only(["mine".to_owned()].into());
    let walked = |filter: &ExecutionFilter| -> Vec<String> {
        let state = index.read();
        let postings = state.candidates(filter);
        postings.iter().flat_map(|p| p.values().map(|e| e.id.namespace.clone())).collect()
    };
    for filter in [
        ExecutionFilter { pipeline: Some("rare".into()), scope: scope.clone(), ..ExecutionFilter::default() },
        ExecutionFilter { phase: Some(Phase::Running), scope: scope.clone(), ..ExecutionFilter::default() },
        ExecutionFilter { namespace: Some("mine".into()), pipeline: Some("rare".into()), ..ExecutionFilter::default() },
        ExecutionFilter { namespace: Some("mine".into()), phase: Some(Phase::Running), ..ExecutionFilter::default() },
    ] {
        let namespaces = walked(&filter);
        assert!(!namespaces.is_empty() && namespaces.iter().all(|ns| ns == "mine"), "{filter:?}: {namespaces:?}");
        assert_eq!(names(&index, &ExecutionFilter { pipeline: Some("rare".into()), ..filter.clone() }), ["m-rare"]);
    }
    let everything = walked(&ExecutionFilter { pipeline: Some("rare".into()), ..ExecutionFilter::default() });
    assert_eq!(everything.len(), 6, "a reader of everything walks the smallest cluster-wide posting");
}

#[test]
fn pages_by_name_over_a_partial_scope_skip_other_namespaces_and_resume_from_a_cursor() {
    let index = Index::new(Duration::from_secs(60));
    for ns in ["a", "b", "c"] {
        index.register(ns, Some(ns));
        index.reset(ns, (0..3).map(|i| rejected(ns, &format!("{ns}{i}"))).collect());
    }
    let scope = Scope::only(["a".to_owned(), "c".to_owned()].into());
    let name = |json: &Json| serde_json::from_slice::<serde_json::Value>(&json.bytes).unwrap()["name"].clone();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = index.rejections(None, &scope, after.as_ref(), 2);
        seen.extend(page.items.iter().map(name));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["a0", "a1", "a2", "c0", "c1", "c2"]);
}

/// A subscriber that notes nothing: ended runs are kept as archived where there is one.
struct Unheard;

impl Subscriber for Unheard {
    fn served(&self, _: &Arc<ExecutionEntry>) {}
    fn ended(&self, _: &Arc<ExecutionEntry>, _: jiff::Timestamp) {}
    fn relisted(&self, _: Option<&str>, _: &[&Arc<ExecutionEntry>]) {}
}

#[test]
fn pipelines_count_archived_runs_only_with_history() {
    let index = Index::new(Duration::from_secs(60)).with_subscriber(Arc::new(Unheard));
    index.register("a", Some("a"));
    index.apply("a", exec("a", "run-1", Doc::new("p").phase("Failed")));
    index.apply("a", exec("a", "run-2", Doc::new("p").phase("Succeeded")));
    let body = |history: bool| {
        let page = index.pipelines(None, &Scope::all(), None, 10, history);
        page.items.first().map(|b| serde_json::from_slice::<serde_json::Value>(&b.bytes).unwrap())
    };
    let count = |history: bool| body(history).map(|p| p["executionCount"].clone());
    assert_eq!((count(false), count(true)), (Some(2.into()), Some(2.into())));

    index.delete(&ObjectRef { namespace: "a".into(), name: "run-1".into() });
    assert_eq!((count(false), count(true)), (Some(1.into()), Some(2.into())), "the deleted run stays in history");
    assert_eq!(body(true).unwrap()["counts"]["Failed"], 1);
    index.delete(&ObjectRef { namespace: "a".into(), name: "run-2".into() });
    assert_eq!(count(false), None, "without history, a pipeline of no live run is not listed");
    assert_eq!(count(true), Some(2.into()));
    assert_eq!(body(true).unwrap()["latestExecution"]["archived"], true);

    index.apply("a", exec("a", "run-1", Doc::new("p").phase("Running")));
    assert_eq!(count(true), Some(3.into()), "a name live again counts twice until the history is loaded again");
    // What the archive then holds: run-2's deletion only (run-1 is live again).
    let view = serde_json::json!({"pipeline": "p", "application": {"name": "p", "version": "1.0.0"},
        "phase": "Succeeded", "environments": []});
    let at = jiff::Timestamp::now();
    let mut totals = ArchivedTotals::default();
    let id = ObjectRef { namespace: "a".into(), name: "run-2".into() };
    let view = serde_json::from_value(view).unwrap();
    totals.add(ArchivedRun { id, resource_version: "1".into(), sort_time: at, deleted_at: at, view });
    index.replace_archived(totals);
    assert_eq!(count(true), Some(2.into()), "then once, live");
    assert_eq!(body(true).unwrap()["counts"]["Failed"], 0);
    assert_eq!(body(true).unwrap()["counts"]["Running"], 1);
}

/// A varied set of executions across namespaces, pipelines, phases, environments and labels.
fn varied(ns: &str, count: usize) -> Vec<Decoded> {
    let registry = registry();
    (0..count)
        .map(|i| {
            let doc = Doc::new(["p1", "p2", "p3"][i % 3])
                .phase(["Running", "Succeeded", "Failed"][i % 3])
                .started_at(&format!("2026-01-{:02}T00:00:00Z", 1 + i % 7))
                .environments(&[("dev", "Succeeded"), ("prod", ["Pending", "Running"][i % 2])][..1 + i % 2]);
            let cm = Cm::new(ns, &format!("r{i}")).label("team", ["x", "y"][i % 2]).doc(&doc);
            registry.decode(&cm.build())
        })
        .collect()
}

/// Every filter the index has postings for, over `namespaces`.
fn every_filter(namespaces: &[&str]) -> Vec<ExecutionFilter> {
    let mut filters = vec![ExecutionFilter::default()];
    for ns in namespaces {
        filters.push(ExecutionFilter { namespace: Some(ns.to_string()), ..ExecutionFilter::default() });
        let pipeline = Some("p2".to_owned());
        filters.push(ExecutionFilter { namespace: Some(ns.to_string()), pipeline, ..ExecutionFilter::default() });
    }
    filters.push(ExecutionFilter { pipeline: Some("p1".into()), ..ExecutionFilter::default() });
    filters.push(ExecutionFilter { phase: Some(Phase::Failed), ..ExecutionFilter::default() });
    filters.push(ExecutionFilter { environment: Some("prod".into()), ..ExecutionFilter::default() });
    filters.push(ExecutionFilter { labels: Some("team=y".parse().unwrap()), ..ExecutionFilter::default() });
    filters
}

#[test]
fn a_relist_taken_in_whole_lists_as_the_same_executions_applied_one_by_one() {
    let (whole, one_by_one) = (Index::new(Duration::from_secs(60)), Index::new(Duration::from_secs(60)));
    let listings = [("b", 40), ("a", 300), ("c", 5)];
    for index in [&whole, &one_by_one] {
        for (ns, _) in listings {
            index.register(ns, Some(ns));
        }
    }
    // Each later listing is merged with what the earlier ones left: "a" in bulk beside "b", "c"
    // (a few) one by one into "a"'s.
    for (ns, count) in listings {
        whole.reset(ns, varied(ns, count));
    }
    for (ns, count) in listings {
        one_by_one.reset(ns, Vec::<Decoded>::new());
        for object in varied(ns, count) {
            one_by_one.apply(ns, object);
        }
    }
    for filter in every_filter(&["a", "b", "c"]) {
        let listed = names(&whole, &filter);
        assert!(!listed.is_empty(), "{filter:?} matches some");
        assert_eq!(listed, names(&one_by_one, &filter), "{filter:?}");
    }
    assert_eq!(whole.counts(), one_by_one.counts());
    assert_eq!(whole.counts_by_namespace_and_phase(), one_by_one.counts_by_namespace_and_phase());
    let pipeline = |index: &Index| index.pipeline("a", "p2").and_then(|p| p.live.clone()).map(|b| b.bytes);
    assert_eq!(pipeline(&whole), pipeline(&one_by_one), "pipelines resolved from the batch");
    // A later relist of "a" that drops most of it leaves no trace of what it dropped.
    whole.reset("a", varied("a", 10));
    let all = names(&whole, &ExecutionFilter::default());
    assert_eq!(all.len(), 55);
    for filter in every_filter(&["a"]) {
        assert!(names(&whole, &filter).iter().all(|n| all.contains(n)), "{filter:?}");
    }
}

#[test]
fn a_relist_that_names_one_object_twice_keeps_the_last() {
    let index = Index::new(Duration::from_secs(60));
    index.register("a", Some("a"));
    let version = |name: &str, pipeline: &str, version: &str| {
        let mut cm = Cm::new("a", name).doc(&Doc::new(pipeline).started_at("2026-01-01T00:00:00Z")).build();
        cm.metadata.resource_version = Some(version.to_owned());
        registry().decode(&cm)
    };
    index.reset("a", vec![version("x", "p1", "1"), version("y", "p1", "1"), version("x", "p2", "2")]);
    let by_pipeline = |p: &str| ExecutionFilter { pipeline: Some(p.into()), ..ExecutionFilter::default() };
    assert_eq!(names(&index, &ExecutionFilter::default()), ["x", "y"]);
    assert_eq!(names(&index, &by_pipeline("p1")), ["y"], "the first x is listed nowhere");
    assert_eq!(names(&index, &by_pipeline("p2")), ["x"]);
}

/// The archive as a warm start leaves it: each read counted, and failing while `down`.
struct Archive {
    detail: Option<bytes::Bytes>,
    down: std::sync::atomic::AtomicBool,
    reads: std::sync::atomic::AtomicUsize,
}

impl StoredDetails for Archive {
    fn read<'a>(
        &'a self,
        _: &'a ObjectRef,
        _: (&'a str, &'a str),
        _: crate::wire::Tag,
    ) -> futures::future::BoxFuture<'a, Result<Option<bytes::Bytes>, DetailUnavailable>> {
        use std::sync::atomic::Ordering::SeqCst;
        self.reads.fetch_add(1, SeqCst);
        let answer = if self.down.load(SeqCst) { Err(DetailUnavailable::Unreadable) } else { Ok(self.detail.clone()) };
        Box::pin(std::future::ready(answer))
    }
}

/// A detail left in the archive is read when first asked for and kept: an archive that cannot
/// answer leaves it unread (asked again next time), and one that no longer holds the version
/// says it is being replaced.
#[tokio::test]
async fn a_detail_left_in_the_archive_is_read_once_when_first_asked_for() {
    use std::sync::atomic::Ordering::SeqCst;
    let Ok(execution) = exec("team-a", "run-1", Doc::new("web")) else { panic!("decodes") };
    let made = ExecutionEntry::new(execution);
    let (tag, bytes) = (made.detail.tag, made.detail.loaded().cloned());
    let archive = Arc::new(Archive { detail: bytes.clone(), down: true.into(), reads: 0.into() });
    let restored = |archive: Arc<Archive>| {
        let Ok(execution) = exec("team-a", "run-1", Doc::new("web")) else { panic!("decodes") };
        ExecutionEntry { detail: DetailBody::stored(tag, archive), ..ExecutionEntry::new(execution) }
    };
    let entry = restored(archive.clone());
    assert!(entry.detail.loaded().is_none() && entry.detail.is_empty());
    assert_eq!(entry.detail().await.err(), Some(DetailUnavailable::Unreadable));
    assert!(entry.detail.loaded().is_none(), "a failed read keeps nothing");
    archive.down.store(false, SeqCst);
    assert_eq!(entry.detail().await.ok(), bytes);
    assert_eq!((entry.detail.tag, entry.detail().await.ok()), (tag, bytes.clone()), "asked again, as it was");
    assert_eq!(archive.reads.load(SeqCst), 2, "read once it answered, then kept");
    assert_eq!(entry.detail.len(), bytes.as_ref().map_or(0, |b| b.len()));

    let replaced = Arc::new(Archive { detail: None, down: false.into(), reads: 0.into() });
    assert_eq!(restored(replaced).detail().await.err(), Some(DetailUnavailable::Replaced));
}
