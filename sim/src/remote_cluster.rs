//! The replica side of the simulated cluster API: core's `Cluster` seam
//! implemented as messages to the cluster node.

use crate::cluster_node::ClusterResult;
use crate::rpc::{Caller, CLUSTER_TAG};
use haywire_core::cluster::{Cluster, ClusterError, ClusterReply, ClusterRequest};
use std::net::SocketAddr;
use std::sync::Arc;

pub struct RemoteCluster {
    caller: Arc<Caller>,
    cluster: SocketAddr,
}

impl RemoteCluster {
    pub fn new(caller: Arc<Caller>, cluster: SocketAddr) -> Self {
        RemoteCluster { caller, cluster }
    }
}

impl Cluster for RemoteCluster {
    async fn call(&self, req: ClusterRequest) -> Result<ClusterReply, ClusterError> {
        match self.caller.call::<ClusterRequest, ClusterResult>(self.cluster, CLUSTER_TAG, req).await {
            Ok(reply) => reply,
            Err(e) => Err(ClusterError::Unavailable(e)),
        }
    }
}
