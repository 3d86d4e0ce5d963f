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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sim = k8s_sim::Sim::start_with(args.listen, k8s_sim::Options::default()).await?;
    for ns in &args.namespaces {
        sim.create_namespace(ns);
    }
    std::fs::write(&args.kubeconfig, sim.kubeconfig())?;
    println!("k8s-sim listening on {}; kubeconfig written to {}", sim.url(), args.kubeconfig.display());
    println!("try: KUBECONFIG={} kubectl get configmaps -A", args.kubeconfig.display());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
