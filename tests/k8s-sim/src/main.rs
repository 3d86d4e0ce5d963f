//! Runs the simulator on its own and writes a kubeconfig for kubectl or execwatch.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(about = "A Kubernetes API simulator (core v1 ConfigMaps and Namespaces) for execwatch")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where to write a kubeconfig that points at the simulator.
    #[arg(long, default_value = "k8s-sim.kubeconfig")]
    kubeconfig: PathBuf,
    /// Namespaces to create at start (comma-separated).
    #[arg(long, value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Bearer tokens that TokenReview accepts, in kube-apiserver's format:
    /// `token,user,uid,"group1,group2"` per line.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sim = k8s_sim::Sim::start_with(args.listen, k8s_sim::Options::default()).await?;
    for ns in &args.namespaces {
        sim.create_namespace(ns);
    }
    if let Some(path) = &args.token_auth_file {
        let text = std::fs::read_to_string(path)?;
        sim.set_token_file(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    std::fs::write(&args.kubeconfig, sim.kubeconfig())?;
    println!("k8s-sim listening on {}; kubeconfig written to {}", sim.url(), args.kubeconfig.display());
    println!("try: KUBECONFIG={} kubectl get configmaps -A", args.kubeconfig.display());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
