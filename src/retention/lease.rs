//! A `coordination.k8s.io/v1` Lease, so that one replica prunes at a time: taken when absent or
//! expired, renewed by its holder, and every write is a replace at the version read, so two
//! replicas racing for it cannot both win. Expiry is judged as client-go's leader election
//! judges it: by how long this replica has seen the Lease unchanged, on its own monotonic
//! clock, never by comparing the holder's `renewTime` with this replica's wall clock (a replica
//! whose clock runs fast would take a Lease its holder still renews).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease as LeaseObject, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use super::pruner::LeaseSettings;

pub struct Lease {
    api: Api<LeaseObject>,
    settings: LeaseSettings,
    /// The Lease's resourceVersion when last read, and when this replica first saw it so.
    observed: std::sync::Mutex<Option<(String, tokio::time::Instant)>>,
}

impl Lease {
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        Lease { api: Api::namespaced(client, &settings.namespace), settings, observed: Default::default() }
    }

    /// Whether the Lease at `version`, which lasts `lasts`, has gone unrenewed that long since
    /// this replica first saw it at that version.
    fn expired(&self, version: &str, lasts: Duration) -> bool {
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        match &*observed {
            Some((seen, since)) if seen == version => now.duration_since(*since) >= lasts,
            _ => {
                *observed = Some((version.to_owned(), now));
                false
            }
        }
    }

    /// Takes or renews the Lease: until when this replica may act on it, or `None` while another
    /// holds it.
    pub async fn lead(&self) -> Result<Option<tokio::time::Instant>, kube::Error> {
        let (name, me) = (&self.settings.name, &self.settings.identity);
        // Act for a third of the lease, so a renewal comes well before another may take it.
        let until = tokio::time::Instant::now() + self.settings.duration / 3;
        let now = MicroTime(Timestamp::now());
        let Some(mut lease) = self.api.get_opt(name).await? else {
            let lease = LeaseObject {
                metadata: ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.clone()),
                    lease_duration_seconds: Some(self.settings.duration.as_secs().max(1) as i32),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Some(until)),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let lasts = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let expired = self.expired(&version, lasts);
        if holder != *me && !holder.is_empty() && !expired {
            return Ok(None);
        }
        if holder != *me {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(me.clone());
        spec.lease_duration_seconds = Some(self.settings.duration.as_secs().max(1) as i32);
        spec.renew_time = Some(now);
        match self.api.replace(name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(Some(until)),
            // Another replica wrote it since it was read: it leads.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(e) => Err(e),
        }
    }
}
