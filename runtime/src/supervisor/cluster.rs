//! The cluster admin request: the membership view, with this node's own
//! module versions as the supervisor knows them now.

use super::{SupState, Supervisor};
use crate::cluster::{ClusterStatus, ModuleVersion};
use crate::error::Error;

impl Supervisor {
    pub(super) fn cluster(st: &SupState) -> Result<ClusterStatus, Error> {
        let own = st
            .table
            .iter()
            .map(|(name, e)| ModuleVersion {
                name: name.clone(),
                code_version: e.current.code_version.clone(),
                state_version: e.current.state_version,
            })
            .collect();
        st.cluster.status(own).ok_or(Error::NotInCluster)
    }
}
