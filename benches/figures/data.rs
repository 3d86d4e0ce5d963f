//! Realistic executions, generated deterministically: 2–22 KiB documents (about 9 KiB on
//! average) across 50 namespaces and 500 pipelines, with the phases and environments of a busy
//! delivery platform.

pub const NAMESPACES: usize = 50;
pub const PIPELINES: usize = 500;
pub const LABEL: &str = "pipelines.gitops.dev/execution";
pub const PIPELINE_LABEL: &str = "pipelines.gitops.dev/pipeline";

/// One execution as a writer records it.
pub struct Execution {
    pub namespace: String,
    pub name: String,
    pub pipeline: String,
    pub document: String,
}

/// A simulator holding executions `0..n` in their namespaces (created 32 at a time, as
/// writers do), and a client of it.
pub async fn simulator(n: usize) -> (k8s_sim::Sim, kube::Client) {
    use futures::StreamExt;
    let sim = k8s_sim::Sim::start().await.expect("simulator");
    for ns in 0..NAMESPACES {
        sim.create_namespace(&format!("ns-{ns}"));
    }
    let client = kube::Client::try_from(kube::Config::new(sim.url().parse().expect("url"))).expect("client");
    let creates = futures::stream::iter(0..n).map(|i| {
        let client = client.clone();
        async move {
            let e = execution(i, 0);
            let api = kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, &e.namespace);
            api.create(&kube::api::PostParams::default(), &e.configmap()).await.expect("create");
        }
    });
    creates.buffer_unordered(32).collect::<Vec<_>>().await;
    (sim, client)
}

/// Writes executions `0..n` into `dir` as manifests, one file each; returns the payload.
pub fn write_dir(dir: &std::path::Path, n: usize) -> u64 {
    std::fs::create_dir_all(dir).expect("create the directory");
    let mut payload = 0;
    for i in 0..n {
        let e = execution(i, 0);
        payload += e.document.len() as u64;
        std::fs::write(dir.join(format!("{}.yaml", e.name)), e.manifest()).expect("write");
    }
    payload
}

/// A well-mixed pseudo-random number from `seed` (splitmix64).
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn namespace(i: usize) -> String {
    format!("ns-{}", i % PIPELINES % NAMESPACES)
}

/// Execution `i`, at its `generation`-th change (0 when first written).
pub fn execution(i: usize, generation: usize) -> Execution {
    let p = i % PIPELINES;
    let r = mix(i as u64);
    let phase = match r % 100 {
        0..70 => "Succeeded",
        70..85 => "Failed",
        85..95 => "Running",
        _ => "Cancelled",
    };
    // Sizes skew small: 2 KiB + 20 KiB × u², about 9 KiB on average.
    let u = (mix(r) % 10_000) as f64 / 10_000.0;
    let target = 2048 + (20_480.0 * u * u) as usize;
    let started = 1_767_225_600 + i as i64 * 37; // 2026-01-01, one run every 37 s
    let at = |offset: i64| jiff::Timestamp::from_second(started + offset).expect("time").to_string();
    let pipeline = format!("pipeline-{p}");
    let mut doc = format!(
        "apiVersion: pipelines.gitops.dev/v1alpha1\nkind: PipelineExecution\npipeline: {pipeline}\n\
         application:\n  name: app-{p}\n  version: \"1.{i}.{generation}\"\n  revision: \"{:012x}\"\n\
         trigger:\n  type: GitPush\n  by: ci-bot\n  ref: refs/heads/main\nphase: {phase}\n\
         message: \"change {generation}\"\nstartedAt: \"{}\"\nlogsUrl: https://ci.example.com/{pipeline}/runs/{i}\n\
         environments:\n",
        r & 0xffff_ffff_ffff,
        at(0)
    );
    let mut environments = vec!["dev", "staging", "prod"];
    if p.is_multiple_of(10) {
        environments.push("canary");
    }
    let mut t = 0;
    let per_env = target.saturating_sub(doc.len()) / environments.len();
    for (e, env) in environments.iter().enumerate() {
        let env_phase = if e == 0 { "Succeeded" } else { phase };
        let begin = doc.len();
        doc.push_str(&format!(
            "  - name: {env}\n    phase: {env_phase}\n    startedAt: \"{}\"\n    finishedAt: \"{}\"\n    targets:\n",
            at(e as i64 * 300),
            at(e as i64 * 300 + 240)
        ));
        loop {
            doc.push_str(&format!(
                "      - cluster: {env}-{}-{}\n        namespace: app-{p}\n        phase: {env_phase}\n        message: \"rollout of app-{p} 1.{i}.{generation} to {env}-{} finished: all replicas updated and available, health checks passing\"\n",
                ["eu", "us", "ap"][t % 3],
                t,
                t
            ));
            t += 1;
            if doc.len() - begin >= per_env {
                break;
            }
        }
    }
    Execution { namespace: namespace(i), name: format!("run-{i}"), pipeline, document: doc }
}

impl Execution {
    /// The ConfigMap manifest the directory source reads.
    pub fn manifest(&self) -> String {
        let indented: String = self.document.lines().map(|l| format!("    {l}\n")).collect();
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n  namespace: {}\n  labels:\n    {LABEL}: \"true\"\n    {PIPELINE_LABEL}: {}\ndata:\n  execution.yaml: |\n{indented}",
            self.name, self.namespace, self.pipeline
        )
    }

    /// The ConfigMap a writer creates through the API.
    pub fn configmap(&self) -> k8s_openapi::api::core::v1::ConfigMap {
        let mut cm = execwatch::fixtures::Cm::new(&self.namespace, &self.name)
            .label(PIPELINE_LABEL, &self.pipeline)
            .data("execution.yaml", &self.document)
            .build();
        cm.metadata.resource_version = None;
        cm
    }
}
