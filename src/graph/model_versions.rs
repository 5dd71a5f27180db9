//! Per model, its versions in order, for deciding which a range reaches. A model has a
//! few versions, so each list is a boxed slice sorted by version, allocated at its
//! length: the B-tree map it replaces allocated a whole node (about 250 bytes) for
//! every model, which at a million models was a quarter of a gigabyte.

use crate::domain::{Version, VersionId};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ModelVersions(Box<[(Version, VersionId)]>);

impl ModelVersions {
    /// Records `id` as the model's `version`, in place of any id it had.
    pub fn insert(&mut self, version: Version, id: VersionId) {
        match self.0.binary_search_by_key(&version, |&(v, _)| v) {
            Ok(at) => self.0[at].1 = id,
            Err(at) => {
                let mut all = std::mem::take(&mut self.0).into_vec();
                all.insert(at, (version, id));
                self.0 = all.into_boxed_slice();
            }
        }
    }

    pub fn get(&self, version: Version) -> Option<VersionId> {
        self.0
            .binary_search_by_key(&version, |&(v, _)| v)
            .ok()
            .map(|at| self.0[at].1)
    }

    /// The versions in order, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = (Version, VersionId)> + '_ {
        self.0.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_stay_in_order_and_a_version_seen_again_takes_its_new_id() {
        let mut m = ModelVersions::default();
        for (v, id) in [
            ((2, 0, 0), 1),
            ((1, 0, 0), 2),
            ((1, 10, 0), 3),
            ((1, 2, 0), 4),
        ] {
            m.insert(Version::new(v.0, v.1, v.2), VersionId(id));
        }
        m.insert(Version::new(1, 2, 0), VersionId(9));
        let order: Vec<(String, i64)> = m.iter().map(|(v, id)| (v.to_string(), id.0)).collect();
        assert_eq!(
            order,
            [("1.0.0", 2), ("1.2.0", 9), ("1.10.0", 3), ("2.0.0", 1)]
                .map(|(v, id)| (v.to_string(), id))
        );
        assert_eq!(m.get(Version::new(1, 10, 0)), Some(VersionId(3)));
        assert_eq!(m.get(Version::new(3, 0, 0)), None);
        assert_eq!(m.len(), 4);
    }
}
