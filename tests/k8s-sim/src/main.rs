//! Runs the simulator on its own and writes a kubeconfig for kubectl or execwatch.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = k8s_sim::Args::parse();
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
