//! The cluster seam: a k8s-like API for the pods and secrets that make up
//! workers. Create and delete by name, list by label selector; a pod starts
//! `Pending`, becomes `Running` once the cluster has started it, and may
//! fail.
//!
//! [`MemCluster`] is an in-memory implementation (tests; the simulator puts
//! one behind a simulated network with its own faults).

use crate::clock::{Clock, Millis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::Mutex;

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    pub name: String,
    pub labels: Labels,
    pub created_at: Millis,
    pub phase: PodPhase,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    pub name: String,
    pub labels: Labels,
    pub created_at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterRequest {
    CreateSecret { name: String, labels: Labels },
    DeleteSecret { name: String },
    /// Secrets carrying every label of `selector`.
    ListSecrets { selector: Labels },
    CreatePod { name: String, labels: Labels },
    DeletePod { name: String },
    GetPod { name: String },
    ListPods { selector: Labels },
    /// Pods carrying every label of `selector` and, under `key`, one of
    /// `values` (a set-based selector, `key in (values)`).
    ListPodsIn { selector: Labels, key: String, values: BTreeSet<String> },
}

impl ClusterRequest {
    pub fn op(&self) -> &'static str {
        match self {
            ClusterRequest::CreateSecret { .. } => "create_secret",
            ClusterRequest::DeleteSecret { .. } => "delete_secret",
            ClusterRequest::ListSecrets { .. } => "list_secrets",
            ClusterRequest::CreatePod { .. } => "create_pod",
            ClusterRequest::DeletePod { .. } => "delete_pod",
            ClusterRequest::GetPod { .. } => "get_pod",
            // A pod list either way: the same faults and delays apply.
            ClusterRequest::ListPods { .. } | ClusterRequest::ListPodsIn { .. } => "list_pods",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterReply {
    Done,
    Pod(Option<Pod>),
    /// Lists carry the cluster's `now`, so callers judge ages in its time.
    Pods { now: Millis, list: Vec<Pod> },
    Secrets { now: Millis, list: Vec<Secret> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterError {
    /// No answer in time: the request may or may not have happened.
    Unavailable(String),
    /// The API refused or failed the request; nothing happened.
    Failed(String),
    AlreadyExists(String),
    NotFound(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Unavailable(m) => write!(f, "cluster unavailable: {m}"),
            ClusterError::Failed(m) => write!(f, "cluster request failed: {m}"),
            ClusterError::AlreadyExists(n) => write!(f, "{n} already exists"),
            ClusterError::NotFound(n) => write!(f, "{n} not found"),
        }
    }
}

impl std::error::Error for ClusterError {}

pub trait Cluster: Send + Sync + 'static {
    fn call(&self, req: ClusterRequest) -> impl Future<Output = Result<ClusterReply, ClusterError>> + Send;
}

fn unexpected(op: &str, r: ClusterReply) -> ClusterError {
    ClusterError::Failed(format!("{op}: unexpected reply {r:?}"))
}

/// Typed wrappers over [`Cluster::call`].
pub trait ClusterExt: Cluster {
    fn create_secret(&self, name: &str, labels: Labels) -> impl Future<Output = Result<(), ClusterError>> + Send {
        let req = ClusterRequest::CreateSecret { name: name.into(), labels };
        async move { self.call(req).await.map(|_| ()) }
    }
    /// Deleting what is already gone is not an error.
    fn delete_secret(&self, name: &str) -> impl Future<Output = Result<(), ClusterError>> + Send {
        let req = ClusterRequest::DeleteSecret { name: name.into() };
        async move {
            match self.call(req).await {
                Ok(_) | Err(ClusterError::NotFound(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
    fn list_secrets(&self, selector: Labels) -> impl Future<Output = Result<(Millis, Vec<Secret>), ClusterError>> + Send {
        async move {
            match self.call(ClusterRequest::ListSecrets { selector }).await? {
                ClusterReply::Secrets { now, list } => Ok((now, list)),
                r => Err(unexpected("list_secrets", r)),
            }
        }
    }
    fn create_pod(&self, name: &str, labels: Labels) -> impl Future<Output = Result<(), ClusterError>> + Send {
        let req = ClusterRequest::CreatePod { name: name.into(), labels };
        async move { self.call(req).await.map(|_| ()) }
    }
    /// Deleting what is already gone is not an error.
    fn delete_pod(&self, name: &str) -> impl Future<Output = Result<(), ClusterError>> + Send {
        let req = ClusterRequest::DeletePod { name: name.into() };
        async move {
            match self.call(req).await {
                Ok(_) | Err(ClusterError::NotFound(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
    fn get_pod(&self, name: &str) -> impl Future<Output = Result<Option<Pod>, ClusterError>> + Send {
        let req = ClusterRequest::GetPod { name: name.into() };
        async move {
            match self.call(req).await? {
                ClusterReply::Pod(p) => Ok(p),
                r => Err(unexpected("get_pod", r)),
            }
        }
    }
    fn list_pods(&self, selector: Labels) -> impl Future<Output = Result<(Millis, Vec<Pod>), ClusterError>> + Send {
        self.list_pods_where(ClusterRequest::ListPods { selector })
    }
    /// Pods matching `selector` whose `key` label is one of `values`.
    fn list_pods_in(
        &self,
        selector: Labels,
        key: &str,
        values: BTreeSet<String>,
    ) -> impl Future<Output = Result<(Millis, Vec<Pod>), ClusterError>> + Send {
        self.list_pods_where(ClusterRequest::ListPodsIn { selector, key: key.to_string(), values })
    }
    #[doc(hidden)]
    fn list_pods_where(&self, req: ClusterRequest) -> impl Future<Output = Result<(Millis, Vec<Pod>), ClusterError>> + Send {
        async move {
            match self.call(req).await? {
                ClusterReply::Pods { now, list } => Ok((now, list)),
                r => Err(unexpected("list_pods", r)),
            }
        }
    }
}

impl<K: Cluster + ?Sized> ClusterExt for K {}

fn matches(labels: &Labels, selector: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Names by label: each `(key, value)` a pod or secret carries, the names
/// carrying it. A list walks the smallest set its selector names instead of
/// every object (a replica's health check lists its own pods every couple
/// of seconds; docs/design.md §12).
#[derive(Clone, Debug, Default)]
struct LabelIndex(BTreeMap<String, BTreeMap<String, BTreeSet<String>>>);

impl LabelIndex {
    fn insert(&mut self, name: &str, labels: &Labels) {
        for (k, v) in labels {
            self.0.entry(k.clone()).or_default().entry(v.clone()).or_default().insert(name.to_string());
        }
    }

    fn remove(&mut self, name: &str, labels: &Labels) {
        for (k, v) in labels {
            let Some(values) = self.0.get_mut(k) else { continue };
            if let Some(names) = values.get_mut(v) {
                names.remove(name);
                if names.is_empty() {
                    values.remove(v);
                }
            }
            if values.is_empty() {
                self.0.remove(k);
            }
        }
    }

    /// The set of names carrying `key = value`, looked up by reference (a
    /// health check asks once per worker it judges).
    fn set(&self, key: &str, value: &str) -> Option<&BTreeSet<String>> {
        self.0.get(key)?.get(value)
    }

    /// The names carrying `key = value`.
    fn named(&self, key: &str, value: &str) -> impl Iterator<Item = &str> {
        self.set(key, value).into_iter().flatten().map(String::as_str)
    }

    /// The fewest names that can match `selector`.
    fn candidates(&self, selector: &Labels) -> Candidates<'_> {
        let mut best: Option<&BTreeSet<String>> = None;
        for (k, v) in selector {
            match self.set(k, v) {
                None => return Candidates::Nothing,
                Some(names) if best.is_none_or(|b| names.len() < b.len()) => best = Some(names),
                Some(_) => {}
            }
        }
        best.map_or(Candidates::All, Candidates::Named)
    }
}

/// What a selector can match, by the label index.
enum Candidates<'a> {
    /// An empty selector: every object.
    All,
    /// A label no object carries: none.
    Nothing,
    /// At most these names (the smallest set a label of the selector names).
    Named(&'a BTreeSet<String>),
}

impl<'a> Candidates<'a> {
    /// The objects of `all` (keyed by name) that may match: through the
    /// named set when it is under half of them, else one walk of all, as
    /// a lookup per name cost more than the walk (a deployment's list;
    /// docs/design.md §12). In name order either way.
    fn of<V>(self, all: &'a BTreeMap<String, V>) -> Box<dyn Iterator<Item = &'a V> + 'a> {
        match self {
            Candidates::Nothing => Box::new(std::iter::empty()),
            Candidates::Named(names) if names.len() < all.len() / 2 => {
                Box::new(names.iter().filter_map(move |n| all.get(n)))
            }
            Candidates::All | Candidates::Named(_) => Box::new(all.values()),
        }
    }
}

/// An in-memory cluster. A pod becomes `Running` `start_ms` after it was
/// created (set per pod by the host through [`MemCluster::set_next_start_ms`]).
#[derive(Clone, Debug, Default)]
pub struct MemCluster {
    pods: BTreeMap<String, (Pod, Millis)>,
    secrets: BTreeMap<String, Secret>,
    pod_labels: LabelIndex,
    secret_labels: LabelIndex,
    next_start_ms: Millis,
}

impl MemCluster {
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the next created pod takes to start.
    pub fn set_next_start_ms(&mut self, ms: Millis) {
        self.next_start_ms = ms;
    }

    /// How long pod `name` takes from creation to running.
    pub fn start_delay(&self, name: &str) -> Option<Millis> {
        self.pods.get(name).map(|(p, ready_at)| ready_at.saturating_sub(p.created_at))
    }

    /// The pod dies (its process crashed, its node went away).
    pub fn fail_pod(&mut self, name: &str) -> bool {
        match self.pods.get_mut(name) {
            Some((p, _)) if p.phase != PodPhase::Failed => {
                p.phase = PodPhase::Failed;
                true
            }
            _ => false,
        }
    }

    fn pod_at(&self, name: &str, now: Millis) -> Option<Pod> {
        self.pods.get(name).map(|entry| Self::as_at(entry, now))
    }

    /// A pod as it is at `now` (running once its start delay passed).
    fn as_at((p, ready_at): &(Pod, Millis), now: Millis) -> Pod {
        let mut p = p.clone();
        if p.phase == PodPhase::Pending && now >= *ready_at {
            p.phase = PodPhase::Running;
        }
        p
    }

    /// Every pod as it is at `now`.
    pub fn pods(&self, now: Millis) -> Vec<Pod> {
        self.pods.keys().filter_map(|n| self.pod_at(n, now)).collect()
    }

    pub fn secrets(&self) -> Vec<Secret> {
        self.secrets.values().cloned().collect()
    }

    /// Pods matching `selector` as they are at `now`, in name order.
    fn pods_matching(&self, selector: &Labels, now: Millis) -> Vec<Pod> {
        let candidates = self.pod_labels.candidates(selector).of(&self.pods);
        candidates.filter(|(p, _)| matches(&p.labels, selector)).map(|entry| Self::as_at(entry, now)).collect()
    }

    fn secrets_matching(&self, selector: &Labels) -> Vec<Secret> {
        let candidates = self.secret_labels.candidates(selector).of(&self.secrets);
        candidates.filter(|s| matches(&s.labels, selector)).cloned().collect()
    }

    pub fn apply(&mut self, req: &ClusterRequest, now: Millis) -> Result<ClusterReply, ClusterError> {
        Ok(match req {
            ClusterRequest::CreateSecret { name, labels } => {
                if self.secrets.contains_key(name) {
                    return Err(ClusterError::AlreadyExists(name.clone()));
                }
                self.secret_labels.insert(name, labels);
                self.secrets.insert(name.clone(), Secret { name: name.clone(), labels: labels.clone(), created_at: now });
                ClusterReply::Done
            }
            ClusterRequest::DeleteSecret { name } => {
                let gone = self.secrets.remove(name).ok_or_else(|| ClusterError::NotFound(name.clone()))?;
                self.secret_labels.remove(name, &gone.labels);
                ClusterReply::Done
            }
            ClusterRequest::ListSecrets { selector } => ClusterReply::Secrets { now, list: self.secrets_matching(selector) },
            ClusterRequest::CreatePod { name, labels } => {
                if self.pods.contains_key(name) {
                    return Err(ClusterError::AlreadyExists(name.clone()));
                }
                let pod = Pod { name: name.clone(), labels: labels.clone(), created_at: now, phase: PodPhase::Pending };
                self.pod_labels.insert(name, labels);
                self.pods.insert(name.clone(), (pod, now.saturating_add(self.next_start_ms)));
                ClusterReply::Done
            }
            ClusterRequest::DeletePod { name } => {
                let (gone, _) = self.pods.remove(name).ok_or_else(|| ClusterError::NotFound(name.clone()))?;
                self.pod_labels.remove(name, &gone.labels);
                ClusterReply::Done
            }
            ClusterRequest::GetPod { name } => ClusterReply::Pod(self.pod_at(name, now)),
            ClusterRequest::ListPods { selector } => ClusterReply::Pods { now, list: self.pods_matching(selector, now) },
            ClusterRequest::ListPodsIn { selector, key, values } => {
                // Each value's names through the index, in name order (a
                // sorted vector: a set cost more than the lookups).
                let mut names: Vec<&str> = values.iter().flat_map(|v| self.pod_labels.named(key, v)).collect();
                names.sort_unstable();
                names.dedup();
                let list = names
                    .into_iter()
                    .filter_map(|n| self.pods.get(n))
                    .filter(|(p, _)| matches(&p.labels, selector))
                    .map(|entry| Self::as_at(entry, now))
                    .collect();
                ClusterReply::Pods { now, list }
            }
        })
    }
}

/// A [`MemCluster`] in this process, on a clock (tests).
pub struct LocalCluster<C> {
    inner: Mutex<MemCluster>,
    clock: C,
}

impl<C: Clock> LocalCluster<C> {
    pub fn new(cluster: MemCluster, clock: C) -> Self {
        LocalCluster { inner: Mutex::new(cluster), clock }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut MemCluster) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<C: Clock> Cluster for LocalCluster<C> {
    async fn call(&self, req: ClusterRequest) -> Result<ClusterReply, ClusterError> {
        let now = self.clock.now();
        self.with(|c| c.apply(&req, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> Labels {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn pods_start_after_their_start_delay_and_can_fail() {
        let mut c = MemCluster::new();
        c.set_next_start_ms(500);
        c.apply(&ClusterRequest::CreatePod { name: "p".into(), labels: Labels::new() }, 1_000).unwrap();
        let get = |c: &mut MemCluster, now| match c.apply(&ClusterRequest::GetPod { name: "p".into() }, now).unwrap() {
            ClusterReply::Pod(p) => p.map(|p| p.phase),
            r => panic!("{r:?}"),
        };
        assert_eq!(get(&mut c, 1_499), Some(PodPhase::Pending));
        assert_eq!(get(&mut c, 1_500), Some(PodPhase::Running));
        assert!(c.fail_pod("p"));
        assert_eq!(get(&mut c, 2_000), Some(PodPhase::Failed));
        assert!(!c.fail_pod("nope"));
    }

    #[test]
    fn create_twice_and_delete_missing_are_errors() {
        let mut c = MemCluster::new();
        let create = ClusterRequest::CreateSecret { name: "s".into(), labels: Labels::new() };
        c.apply(&create, 0).unwrap();
        assert_eq!(c.apply(&create, 1), Err(ClusterError::AlreadyExists("s".into())));
        c.apply(&ClusterRequest::DeleteSecret { name: "s".into() }, 2).unwrap();
        assert_eq!(c.apply(&ClusterRequest::DeleteSecret { name: "s".into() }, 3), Err(ClusterError::NotFound("s".into())));
        assert_eq!(c.apply(&ClusterRequest::DeletePod { name: "p".into() }, 3), Err(ClusterError::NotFound("p".into())));
    }

    proptest::proptest! {
        /// The label index answers every list as a walk over every object
        /// would, in the same order, through creates and deletes.
        #[test]
        fn indexed_lists_match_a_full_walk(ops in proptest::collection::vec((0u8..3, 0u8..6, 0u8..3, 0u8..3), 1..60)) {
            let mut c = MemCluster::new();
            for (op, name, app, inst) in ops {
                let name = format!("o{name}");
                let l = labels(&[("app", &format!("a{app}")), ("inst", &format!("i{inst}"))]);
                let reqs = match op {
                    0 => vec![ClusterRequest::CreatePod { name: name.clone(), labels: l.clone() }, ClusterRequest::CreateSecret { name, labels: l }],
                    1 => vec![ClusterRequest::DeletePod { name: name.clone() }, ClusterRequest::DeleteSecret { name }],
                    _ => vec![],
                };
                for r in reqs {
                    let _ = c.apply(&r, 1);
                }
                for sel in [labels(&[]), labels(&[("app", "a1")]), labels(&[("app", "a0"), ("inst", "i2")]), labels(&[("nope", "x")])] {
                    let walk: Vec<String> = c.pods(5).into_iter().filter(|p| matches(&p.labels, &sel)).map(|p| p.name).collect();
                    let listed = match c.apply(&ClusterRequest::ListPods { selector: sel.clone() }, 5).unwrap() {
                        ClusterReply::Pods { list, .. } => list.into_iter().map(|p| p.name).collect::<Vec<_>>(),
                        r => panic!("{r:?}"),
                    };
                    proptest::prop_assert_eq!(&listed, &walk);
                    let values: BTreeSet<String> = ["i0".to_string(), "i2".to_string()].into();
                    let walk_in: Vec<String> = c
                        .pods(5)
                        .into_iter()
                        .filter(|p| matches(&p.labels, &sel) && p.labels.get("inst").is_some_and(|v| values.contains(v)))
                        .map(|p| p.name)
                        .collect();
                    let req = ClusterRequest::ListPodsIn { selector: sel.clone(), key: "inst".into(), values };
                    let listed_in = match c.apply(&req, 5).unwrap() {
                        ClusterReply::Pods { list, .. } => list.into_iter().map(|p| p.name).collect::<Vec<_>>(),
                        r => panic!("{r:?}"),
                    };
                    proptest::prop_assert_eq!(&listed_in, &walk_in);
                    let walk: Vec<String> = c.secrets().into_iter().filter(|s| matches(&s.labels, &sel)).map(|s| s.name).collect();
                    let listed = match c.apply(&ClusterRequest::ListSecrets { selector: sel }, 5).unwrap() {
                        ClusterReply::Secrets { list, .. } => list.into_iter().map(|s| s.name).collect::<Vec<_>>(),
                        r => panic!("{r:?}"),
                    };
                    proptest::prop_assert_eq!(&listed, &walk);
                }
            }
        }
    }

    #[test]
    fn lists_select_by_every_label() {
        let mut c = MemCluster::new();
        for (name, l) in [("a", labels(&[("app", "x"), ("dep", "1")])), ("b", labels(&[("app", "x"), ("dep", "2")]))] {
            c.apply(&ClusterRequest::CreateSecret { name: name.into(), labels: l.clone() }, 5).unwrap();
            c.apply(&ClusterRequest::CreatePod { name: name.into(), labels: l }, 5).unwrap();
        }
        let sel = labels(&[("app", "x"), ("dep", "2")]);
        match c.apply(&ClusterRequest::ListSecrets { selector: sel.clone() }, 9).unwrap() {
            ClusterReply::Secrets { now, list } => {
                assert_eq!(now, 9);
                assert_eq!(list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["b"]);
            }
            r => panic!("{r:?}"),
        }
        match c.apply(&ClusterRequest::ListPods { selector: labels(&[("app", "x")]) }, 9).unwrap() {
            ClusterReply::Pods { list, .. } => assert_eq!(list.len(), 2),
            r => panic!("{r:?}"),
        }
    }
}
