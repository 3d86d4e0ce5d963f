//! `execwatch get executions|pipelines|rejections|insights|deliveries` and `get execution NS/NAME`: the
//! service's API for people and scripts. Lists are read a page at a time (`continue`) until they end or
//! `--limit` is reached; `--watch` then follows the list's (or the execution's) event stream.

mod insights;
mod table;

use std::io::Write;
use std::process::ExitCode;

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cli::Exit;
use crate::cli::client::events::Follow;
use crate::cli::client::{ApiClient, ClientArgs, ClientError};
use crate::model::names::split_name;
use crate::model::{ExecutionView, Phase};
use crate::wire::{DeliveryList, DeliveryState, Detail, Freshness, InsightsBody, Pipeline, RejectionBody, Summary};
use crate::wire::{ExecutionList, PipelineList, RejectionList};
use table::{Layout, Run, Table};

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// What to list: `executions`, `pipelines`, `rejections`, `insights`, `deliveries` (of a
    /// namespace's notifications); or `execution NAMESPACE/NAME`.
    pub resource: Resource,
    /// The execution, for `get execution`: NAMESPACE/NAME (or NAME with --namespace).
    pub name: Option<String>,
    /// One namespace (default: every namespace the service serves and the caller may read).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Executions of this pipeline.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Executions in this phase.
    #[arg(long, value_parser = Phase::parse_or_list)]
    pub phase: Option<Phase>,
    /// Executions that include this environment.
    #[arg(long)]
    pub environment: Option<String>,
    /// A label selector on the executions' ConfigMaps (`key=value,other!=x`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Stop after this many items (default: all of them, a page at a time).
    #[arg(long)]
    pub limit: Option<std::num::NonZeroUsize>,
    /// Items asked for per page (the service allows up to 500).
    #[arg(long, default_value_t = 500)]
    pub chunk_size: usize,
    /// `wide` (more columns), `json`, `yaml` or `name` (NAMESPACE/NAME per line); a table by default.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
    /// After the list (its first page, with --watch), print each change as it happens.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Deliveries: only this NotificationSubscription's.
    #[arg(long, help_heading = "Deliveries")]
    pub subscription: Option<String>,
    /// Deliveries: only those `waiting`, `sent` or `dead`.
    #[arg(long, value_parser = parse_state, help_heading = "Deliveries")]
    pub state: Option<DeliveryState>,
    /// Insights: group by these (pipeline, application, environment, namespace, trigger).
    #[arg(long, value_delimiter = ',', help_heading = "Insights")]
    pub group_by: Option<Vec<String>>,
    /// Insights: buckets of `day`, `week` (ISO), `month`, or `whole` (one for the range).
    #[arg(long, default_value = "week", help_heading = "Insights")]
    pub interval: String,
    /// Insights: from this long ago (`90d`, `12h`), a date or an RFC 3339 time.
    #[arg(long, default_value = "90d", help_heading = "Insights")]
    pub since: String,
    /// Insights: up to this time (default: now), in the same forms.
    #[arg(long, help_heading = "Insights")]
    pub until: Option<String>,
    /// Insights: the IANA time zone whose calendar the buckets follow (default UTC).
    #[arg(long, help_heading = "Insights")]
    pub tz: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Resource {
    Executions,
    Pipelines,
    Rejections,
    Insights,
    Deliveries,
    Execution,
}

fn parse_state(text: &str) -> Result<DeliveryState, String> {
    DeliveryState::parse(text).ok_or_else(|| format!("{text:?} is not a state (waiting, sent, dead)"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Wide,
    Json,
    Yaml,
    Name,
}

/// A page of a list, whatever it holds.
trait Page: DeserializeOwned {
    type Item: Serialize + DeserializeOwned;
    fn split(self) -> (Vec<Self::Item>, Option<String>, Freshness);
}

macro_rules! page {
    ($list:ty, $item:ty) => {
        impl Page for $list {
            type Item = $item;
            fn split(self) -> (Vec<$item>, Option<String>, Freshness) {
                (self.items, self.next, self.freshness)
            }
        }
    };
}
page!(ExecutionList, Summary<'static>);
page!(PipelineList, Pipeline<'static>);
page!(RejectionList, RejectionBody<'static>);

/// Exit codes, as `wait`'s: 3 absent, 4 unreachable or usage; 2 any other failure.
fn failed(e: &ClientError) -> ExitCode {
    eprintln!("error: {e}");
    let exit = if e.is_absent() {
        Exit::Absent
    } else if matches!(e, ClientError::Unreachable { .. } | ClientError::Config(_) | ClientError::Plaintext { .. }) {
        Exit::Unusable
    } else {
        Exit::Failed
    };
    exit.into()
}

pub async fn run(args: GetArgs) -> ExitCode {
    let client = match ApiClient::connect(&args.client).await {
        Ok(client) => client,
        Err(e) => return failed(&e),
    };
    let result = tokio::select! {
        result = get(&client, &args) => result,
        _ = tokio::signal::ctrl_c() => return Exit::Interrupted.into(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Client(e)) => failed(&e),
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            Exit::Unusable.into()
        }
        // The reader went away (`| head`): nothing more to say.
        Err(Failure::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Output(e)) => {
            eprintln!("error: cannot write the output: {e}");
            Exit::Failed.into()
        }
    }
}

enum Failure {
    Client(ClientError),
    Usage(String),
    Output(std::io::Error),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Output(e)
    }
}

async fn get(client: &ApiClient, args: &GetArgs) -> Result<(), Failure> {
    if args.resource != Resource::Execution && args.name.is_some() {
        return Err(Failure::Usage(format!(
            "get {:?} takes no name; for one execution: get execution NAMESPACE/NAME",
            args.resource
        )));
    }
    let namespaced = |resource: &str| match &args.namespace {
        Some(ns) => format!("/api/v1/namespaces/{}/{resource}", encode(ns)),
        None => format!("/api/v1/{resource}"),
    };
    match args.resource {
        Resource::Executions => {
            let mut query: Vec<(&str, &str)> = Vec::new();
            let filters =
                [("pipeline", &args.pipeline), ("environment", &args.environment), ("labelSelector", &args.selector)];
            query.extend(filters.iter().filter_map(|(k, v)| v.as_deref().map(|v| (*k, v))));
            if let Some(phase) = args.phase {
                query.push(("phase", phase.as_str()));
            }
            list::<ExecutionList>(client, args, &namespaced("executions"), &query, |items, layout, now| {
                let runs: Vec<Run> = items.iter().map(Run::from).collect();
                table::runs(&runs, layout, now)
            })
            .await
        }
        Resource::Pipelines => {
            list::<PipelineList>(client, args, &namespaced("pipelines"), &[], table::pipelines).await
        }
        Resource::Rejections => {
            list::<RejectionList>(client, args, &namespaced("rejections"), &[], table::rejections).await
        }
        Resource::Insights => insights(client, args, &namespaced("insights")).await,
        Resource::Deliveries => deliveries(client, args).await,
        Resource::Execution => one(client, args).await,
    }
}

/// `get insights`: one answer, as a table, JSON or YAML.
async fn insights(client: &ApiClient, args: &GetArgs, path: &str) -> Result<(), Failure> {
    if args.watch || args.output == Some(Format::Name) {
        return Err(Failure::Usage("get insights takes neither --watch nor -o name".into()));
    }
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(insights::query(args)).finish();
    let body: InsightsBody = client.get(&format!("{path}?{query}")).await?;
    if let Some(freshness) = &body.freshness {
        warn_incomplete(freshness);
    }
    let mut out = std::io::stdout().lock();
    match args.output {
        Some(Format::Json) => writeln!(out, "{}", serde_json::to_string_pretty(&body).unwrap_or_default())?,
        Some(Format::Yaml) => write!(out, "{}", serde_yaml::to_string(&body).unwrap_or_default())?,
        _ if body.groups.is_empty() => eprintln!("No deployments or runs in {} to {}.", body.from, body.to),
        _ => write!(out, "{}", insights::table(&body).render(true))?,
    }
    out.flush()?;
    Ok(())
}

/// `get deliveries -n NAMESPACE`: the namespace's latest deliveries, newest first.
async fn deliveries(client: &ApiClient, args: &GetArgs) -> Result<(), Failure> {
    let Some(namespace) = &args.namespace else {
        return Err(Failure::Usage("get deliveries needs --namespace: deliveries are a namespace's".into()));
    };
    if args.watch {
        return Err(Failure::Usage("get deliveries takes no --watch".into()));
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &args.limit.map_or(100, |l| l.get().min(500)).to_string());
    if let Some(subscription) = &args.subscription {
        query.append_pair("subscription", subscription);
    }
    if let Some(state) = args.state {
        query.append_pair("state", state.as_str());
    }
    let path = format!("/api/v1/namespaces/{}/deliveries?{}", encode(namespace), query.finish());
    let body: DeliveryList = client.get(&path).await?;
    let mut out = std::io::stdout().lock();
    match args.output {
        Some(Format::Json) => writeln!(out, "{}", serde_json::to_string_pretty(&body).unwrap_or_default())?,
        Some(Format::Yaml) => write!(out, "{}", serde_yaml::to_string(&body).unwrap_or_default())?,
        Some(Format::Name) => body.items.iter().try_for_each(|d| writeln!(out, "{}", d.id))?,
        _ if body.items.is_empty() => eprintln!("No deliveries in namespace {namespace}."),
        wide => {
            let table = table::deliveries(&body.items, wide == Some(Format::Wide), Timestamp::now());
            write!(out, "{}", table.render(true))?
        }
    }
    out.flush()?;
    Ok(())
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Pages through a list and prints it; with `--watch`, then follows its stream.
async fn list<P: Page>(
    client: &ApiClient,
    args: &GetArgs,
    path: &str,
    filters: &[(&str, &str)],
    tabulate: impl Fn(&[P::Item], Layout, Timestamp) -> Table,
) -> Result<(), Failure> {
    let layout = Layout { namespaces: args.namespace.is_none(), wide: args.output == Some(Format::Wide) };
    let chunk = args.chunk_size.clamp(1, 500);
    let query = |next: Option<&str>, limit: usize| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(filters).append_pair("limit", &limit.to_string());
        if let Some(token) = next {
            q.append_pair("continue", token);
        }
        format!("{path}?{}", q.finish())
    };
    if args.watch {
        return watch::<P>(client, args, &query(None, chunk), layout, &tabulate).await;
    }
    let (mut items, mut count) = (Vec::new(), 0);
    let mut next: Option<String> = None;
    let mut warned = false;
    let mut out = std::io::stdout().lock();
    loop {
        let want = args.limit.map_or(chunk, |limit| chunk.min(limit.get() - count));
        let (page, more, freshness) = client.get::<P>(&query(next.as_deref(), want)).await?.split();
        if !warned {
            warned = warn_incomplete(&freshness);
        }
        count += page.len();
        if args.output == Some(Format::Name) {
            // Printed as they come: a script reading names starts at once.
            for item in &page {
                writeln!(out, "{}", name_of(item))?;
            }
        } else {
            items.extend(page);
        }
        next = more;
        if next.is_none() || args.limit.is_some_and(|limit| count >= limit.get()) {
            break;
        }
    }
    match args.output {
        Some(Format::Name) => {}
        Some(Format::Json) => {
            writeln!(out, "{}", serde_json::to_string_pretty(&Items { items: &items }).unwrap_or_default())?
        }
        Some(Format::Yaml) => write!(out, "{}", serde_yaml::to_string(&Items { items: &items }).unwrap_or_default())?,
        None | Some(Format::Wide) if items.is_empty() => eprintln!("No resources found."),
        None | Some(Format::Wide) => write!(out, "{}", tabulate(&items, layout, Timestamp::now()).render(true))?,
    }
    out.flush()?;
    Ok(())
}

#[derive(Serialize)]
struct Items<'a, T> {
    items: &'a [T],
}

/// `NAMESPACE/NAME` of an item, read from its JSON (each kind names itself the same way).
fn name_of(item: &impl Serialize) -> String {
    let value = serde_json::to_value(item).unwrap_or_default();
    format!("{}/{}", value["namespace"].as_str().unwrap_or_default(), value["name"].as_str().unwrap_or_default())
}

/// Says on stderr which sources a list lacks, once; whether it did.
fn warn_incomplete(freshness: &Freshness) -> bool {
    for source in &freshness.incomplete_sources {
        let error = source.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
        eprintln!("warning: {} is {:?}{error}; the list lacks what it holds", source.source, source.state);
    }
    !freshness.incomplete_sources.is_empty()
}

/// A list's stream: its snapshot as a table, then a row (or a JSON line) per change.
async fn watch<P: Page>(
    client: &ApiClient,
    args: &GetArgs,
    path: &str,
    layout: Layout,
    tabulate: &impl Fn(&[P::Item], Layout, Timestamp) -> Table,
) -> Result<(), Failure> {
    let mut stream = Follow::new(client.clone(), path.to_owned());
    let mut headers_printed = false;
    loop {
        let Some(event) = stream.next().await? else {
            return Err(Failure::Usage("the service's answer is not a stream: a proxy between may strip them".into()));
        };
        let decode = |what: &str| ClientError::Unreadable {
            server: client.server().to_owned(),
            detail: format!("a {what} event that does not decode"),
        };
        let items: Vec<P::Item> = match event.event.as_str() {
            "snapshot" | "resync" => {
                let (items, _, freshness) =
                    serde_json::from_str::<P>(&event.data).map_err(|_| decode("snapshot"))?.split();
                warn_incomplete(&freshness);
                items
            }
            "added" | "modified" | "deleted" => {
                vec![serde_json::from_str::<P::Item>(&event.data).map_err(|_| decode(&event.event))?]
            }
            _ => continue,
        };
        print_changes(&event.event, &items, args.output, layout, tabulate, &mut headers_printed)?;
    }
}

/// Rows (or JSON lines) for the items of one event.
fn print_changes<T: Serialize>(
    event: &str,
    items: &[T],
    output: Option<Format>,
    layout: Layout,
    tabulate: &impl Fn(&[T], Layout, Timestamp) -> Table,
    headers_printed: &mut bool,
) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match output {
        Some(Format::Json) | Some(Format::Yaml) => {
            for item in items {
                let line = serde_json::json!({ "type": event, "object": item });
                writeln!(out, "{line}")?;
            }
        }
        Some(Format::Name) => {
            for item in items {
                writeln!(out, "{event} {}", name_of(item))?;
            }
        }
        None | Some(Format::Wide) => {
            let mut table = tabulate(items, layout, Timestamp::now());
            table.headers.insert(0, "EVENT".into());
            table.rows.iter_mut().for_each(|row| row.insert(0, event.to_owned()));
            write!(out, "{}", table.render(!*headers_printed))?;
            *headers_printed = true;
        }
    }
    out.flush()?;
    Ok(())
}

/// The typed view of an execution's document, as the service indexes it.
fn view(detail: &Detail<'_>) -> Result<ExecutionView, serde_json::Error> {
    serde::Deserialize::deserialize(&*detail.execution)
}

/// `get execution NS/NAME`: one execution; `--watch` follows it.
async fn one(client: &ApiClient, args: &GetArgs) -> Result<(), Failure> {
    let named = args.name.as_deref().ok_or_else(|| Failure::Usage("get execution needs NAMESPACE/NAME".into()))?;
    let (namespace, name) = split_name(named, args.namespace.as_deref())
        .ok_or_else(|| Failure::Usage(format!("{named:?} is not NAMESPACE/NAME (or NAME with --namespace)")))?;
    let path = format!("/api/v1/namespaces/{namespace}/executions/{name}");
    let layout = Layout { namespaces: true, wide: args.output == Some(Format::Wide) };
    // Details whose documents have the fields every schema keeps (`viewed` checks it first).
    let tabulate = |details: &[Detail<'static>], layout, now| {
        let views: Vec<ExecutionView> = details.iter().filter_map(|d| view(d).ok()).collect();
        let runs: Vec<Run> = details.iter().zip(&views).map(|(d, v)| Run::of_detail(d, v)).collect();
        table::runs(&runs, layout, now)
    };
    let viewed = |detail: Detail<'static>| -> Result<Detail<'static>, ClientError> {
        view(&detail).map_err(|e| ClientError::Unreadable {
            server: client.server().to_owned(),
            detail: format!("an execution without the fields every schema keeps: {e}"),
        })?;
        Ok(detail)
    };
    if !args.watch {
        let detail = viewed(client.get::<Detail<'static>>(&path).await?)?;
        let mut out = std::io::stdout().lock();
        match args.output {
            Some(Format::Json) => writeln!(out, "{}", serde_json::to_string_pretty(&detail).unwrap_or_default())?,
            Some(Format::Yaml) => write!(out, "{}", serde_yaml::to_string(&detail).unwrap_or_default())?,
            Some(Format::Name) => writeln!(out, "{namespace}/{name}")?,
            None | Some(Format::Wide) => write!(out, "{}", tabulate(&[detail], layout, Timestamp::now()).render(true))?,
        }
        return Ok(());
    }
    let mut stream = Follow::new(client.clone(), path);
    let mut headers_printed = false;
    loop {
        let Some(event) = stream.next().await? else {
            return Err(Failure::Usage("the service's answer is not a stream: a proxy between may strip them".into()));
        };
        match event.event.as_str() {
            "snapshot" | "resync" | "added" | "modified" => {
                let detail = serde_json::from_str(&event.data).map_err(|e| ClientError::Unreadable {
                    server: client.server().to_owned(),
                    detail: format!("an event that is not an execution: {e}"),
                })?;
                let item = [viewed(detail)?];
                let archived = item[0].archived == Some(true);
                print_changes(&event.event, &item, args.output, layout, &tabulate, &mut headers_printed)?;
                if archived {
                    return Ok(());
                }
            }
            "deleted" => {
                writeln!(std::io::stdout(), "deleted {namespace}/{name}")?;
                return Ok(());
            }
            _ => {}
        }
    }
}
