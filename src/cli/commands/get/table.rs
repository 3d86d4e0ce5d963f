//! Rows and aligned columns for `get`, as kubectl prints them.

use jiff::Timestamp;

use crate::model::ExecutionView;
use crate::wire::{Detail, Pipeline, RejectionBody, Summary};

/// Columns: headers, and one row of cells per item.
#[derive(Default)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Cells padded to each column's widest, three spaces apart.
    pub fn render(&self, with_headers: bool) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header = with_headers.then_some(&self.headers);
        for row in header.into_iter().chain(&self.rows) {
            let last = row.len().saturating_sub(1);
            for (i, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if i < last {
                    out.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count() + 3));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// How long ago, as kubectl says it: `42s`, `17m`, `5h`, `3d`; blank when unknown.
pub fn age(at: Option<&str>, now: Timestamp) -> String {
    let Some(at) = at.and_then(|t| t.parse::<Timestamp>().ok()) else { return "-".to_owned() };
    let secs = now.duration_since(at).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 120 * 60 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Environment names in the order first seen: one column each.
fn environment_columns<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for name in names {
        if !columns.iter().any(|c| c == name) {
            columns.push(name.to_owned());
        }
    }
    columns
}

/// What an execution row shows, from a list's summary or a whole execution.
pub struct Run<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub pipeline: &'a str,
    pub phase: &'static str,
    pub environments: Vec<(&'a str, &'static str)>,
    pub version: &'a str,
    pub revision: Option<&'a str>,
    pub started_at: Option<&'a str>,
    pub finished_at: Option<&'a str>,
    pub archived: bool,
}

impl<'a> From<&'a Summary<'static>> for Run<'a> {
    fn from(s: &'a Summary<'static>) -> Self {
        Run {
            namespace: &s.namespace,
            name: &s.name,
            pipeline: &s.pipeline,
            phase: s.phase.as_str(),
            environments: s.environments.iter().map(|e| (&*e.name, e.phase.as_str())).collect(),
            version: &s.application.version,
            revision: s.application.revision.as_deref(),
            started_at: s.started_at.as_deref(),
            finished_at: s.finished_at.as_deref(),
            archived: s.archived.unwrap_or(false),
        }
    }
}

impl<'a> Run<'a> {
    pub fn of_detail(d: &'a Detail<'static>, view: &'a ExecutionView) -> Self {
        Run {
            namespace: &d.namespace,
            name: &d.name,
            pipeline: &view.pipeline,
            phase: view.phase.as_str(),
            environments: view.environments.iter().map(|e| (e.name.as_str(), e.phase.as_str())).collect(),
            version: &view.application.version,
            revision: view.application.revision.as_deref(),
            started_at: view.started_at.as_deref(),
            finished_at: view.finished_at.as_deref(),
            archived: d.archived.unwrap_or(false),
        }
    }
}

/// Which optional columns a table has.
#[derive(Clone, Copy)]
pub struct Layout {
    pub namespaces: bool,
    pub wide: bool,
}

impl Layout {
    /// The first headers: NAMESPACE where several are listed, then `names`.
    fn headers(self, names: &[&str]) -> Vec<String> {
        let namespace = self.namespaces.then_some("NAMESPACE");
        namespace.into_iter().chain(names.iter().copied()).map(String::from).collect()
    }

    /// A row of `columns` cells, begun with the namespace where several are listed.
    fn row(self, namespace: &str, columns: usize) -> Vec<String> {
        let mut row = Vec::with_capacity(columns);
        if self.namespaces {
            row.push(namespace.to_owned());
        }
        row
    }
}

/// NAMESPACE, NAME, PIPELINE, PHASE, a column per environment, VERSION, AGE (and with `wide`:
/// REVISION, STARTED, FINISHED, ARCHIVED).
pub fn runs(runs: &[Run<'_>], layout: Layout, now: Timestamp) -> Table {
    let envs = environment_columns(runs.iter().flat_map(|r| r.environments.iter().map(|(n, _)| *n)));
    let mut headers = layout.headers(&["NAME", "PIPELINE", "PHASE"]);
    headers.extend(envs.iter().map(|e| e.to_uppercase()));
    headers.extend(["VERSION", "AGE"].map(String::from));
    if layout.wide {
        headers.extend(["REVISION", "STARTED", "FINISHED", "ARCHIVED"].map(String::from));
    }
    let rows = runs
        .iter()
        .map(|r| {
            let mut row = layout.row(r.namespace, headers.len());
            row.extend([r.name, r.pipeline, r.phase].map(str::to_owned));
            for env in &envs {
                let phase = r.environments.iter().find(|(n, _)| n == env).map_or("-", |(_, p)| *p);
                row.push(phase.to_owned());
            }
            row.push(r.version.to_owned());
            row.push(age(r.started_at, now));
            if layout.wide {
                row.push(r.revision.unwrap_or("-").to_owned());
                row.push(r.started_at.unwrap_or("-").to_owned());
                row.push(r.finished_at.unwrap_or("-").to_owned());
                row.push(if r.archived { "yes" } else { "" }.to_owned());
            }
            row
        })
        .collect();
    Table { headers, rows }
}

/// NAMESPACE, NAME, APPLICATION, LATEST, PHASE, a column per environment (with `wide`, the
/// version that got it there), EXECUTIONS, AGE.
pub fn pipelines(pipelines: &[Pipeline<'static>], layout: Layout, now: Timestamp) -> Table {
    let envs = environment_columns(pipelines.iter().flat_map(|p| p.environments.iter().map(|e| e.name.as_str())));
    let mut headers = layout.headers(&["NAME", "APPLICATION", "LATEST", "PHASE"]);
    headers.extend(envs.iter().map(|e| e.to_uppercase()));
    headers.extend(["EXECUTIONS", "AGE"].map(String::from));
    let rows = pipelines
        .iter()
        .map(|p| {
            let mut row = layout.row(&p.namespace, headers.len());
            let latest = &p.latest_execution;
            row.extend([&*p.name, &*p.application, &*latest.name, latest.phase.as_str()].map(str::to_owned));
            for env in &envs {
                row.push(match p.environments.iter().find(|e| e.name == *env) {
                    Some(e) if layout.wide => format!("{}@{}", e.phase.as_str(), e.version),
                    Some(e) => e.phase.as_str().to_owned(),
                    None => "-".to_owned(),
                });
            }
            row.push(p.execution_count.to_string());
            row.push(age(latest.started_at.as_deref(), now));
            row
        })
        .collect();
    Table { headers, rows }
}

/// NAMESPACE, NAME, REASON, MESSAGE (the first reason's; cut unless `wide`), AGE.
pub fn rejections(rejections: &[RejectionBody<'static>], layout: Layout, now: Timestamp) -> Table {
    let headers = layout.headers(&["NAME", "REASON", "MESSAGE", "AGE"]);
    let rows = rejections
        .iter()
        .map(|r| {
            let rejection = &r.rejection;
            let mut row = layout.row(&rejection.id.namespace, headers.len());
            row.push(rejection.id.name.clone());
            let first = rejection.reasons.first();
            row.push(first.map_or("-", |r| r.code.as_str()).to_owned());
            let message = first.map_or(String::new(), |r| match &r.pointer {
                Some(p) => format!("{p}: {}", r.message),
                None => r.message.clone(),
            });
            let message = message.replace('\n', " ");
            let cut = !layout.wide && message.chars().count() > 80;
            row.push(if cut { format!("{}…", message.chars().take(79).collect::<String>()) } else { message });
            row.push(age(Some(&r.rejected_at), now));
            row
        })
        .collect();
    Table { headers, rows }
}

/// SUBSCRIPTION, TRANSITION, SUBJECT, STATE, ATTEMPTS, LAST ERROR, AGE (and with `wide`: ID,
/// NEXT ATTEMPT).
pub fn deliveries(deliveries: &[crate::wire::Delivery], wide: bool, now: Timestamp) -> Table {
    let mut headers: Vec<String> =
        ["SUBSCRIPTION", "TRANSITION", "SUBJECT", "STATE", "ATTEMPTS", "LAST ERROR", "AGE"].map(String::from).into();
    if wide {
        headers.extend(["ID", "NEXT ATTEMPT"].map(String::from));
    }
    let rows = deliveries
        .iter()
        .map(|d| {
            let error = d.last_error.as_deref().unwrap_or("-").replace('\n', " ");
            let cut = !wide && error.chars().count() > 60;
            let error = if cut { format!("{}…", error.chars().take(59).collect::<String>()) } else { error };
            let mut row = vec![
                d.subscription.clone(),
                d.transition.clone(),
                d.subject.clone(),
                d.state.as_str().to_owned(),
                d.attempts.to_string(),
                error,
                age(Some(&d.created_at), now),
            ];
            if wide {
                row.extend([d.id.clone(), d.next_attempt_at.clone().unwrap_or_else(|| "-".to_owned())]);
            }
            row
        })
        .collect();
    Table { headers, rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_ages_read_as_kubectl_writes_them() {
        let table = Table {
            headers: vec!["NAME".into(), "PHASE".into()],
            rows: vec![vec!["run-1".into(), "Running".into()], vec!["checkout-43".into(), "Failed".into()]],
        };
        assert_eq!(table.render(true), "NAME          PHASE\nrun-1         Running\ncheckout-43   Failed\n");
        let now: Timestamp = "2026-12-03T12:00:00Z".parse().unwrap();
        let ages = ["2026-12-03T11:59:30Z", "2026-12-03T11:00:00Z", "2026-12-02T00:00:00Z", "2026-11-03T12:00:00Z"]
            .map(|t| age(Some(t), now));
        assert_eq!(ages, ["30s", "60m", "36h", "30d"]);
        assert_eq!(age(Some("yesterday"), now), "-");
    }
}
