//! Tenant ids, validated as Mimir and Cortex validate `X-Scope-OrgID`.

use std::fmt;
use std::sync::Arc;

use crate::{Error, Result};

/// The longest tenant id accepted, as in Mimir.
pub(crate) const MAX_TENANT_ID_LEN: usize = 150;

/// A validated tenant id: 1 to 150 characters from `[a-zA-Z0-9!-_.*'()]`, not `.` or
/// `..`. Safe to use as an object-store path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<Self> {
        let bad = |reason| Err(Error::InvalidTenant { id: id.chars().take(200).collect(), reason });
        if id.is_empty() {
            return bad("empty");
        }
        if id.len() > MAX_TENANT_ID_LEN {
            return bad("longer than 150 characters");
        }
        if id == "." || id == ".." {
            return bad("'.' and '..' are reserved");
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()".contains(c);
        if !id.chars().all(ok) {
            return bad("only letters, digits and !-_.*'() are allowed");
        }
        Ok(TenantId(id.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_mimir() {
        assert!(TenantId::new("team-a_1.prod").is_ok());
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new("..").is_err());
        assert!(TenantId::new("a/b").is_err());
        assert!(TenantId::new("a|b").is_err());
        assert!(TenantId::new(&"x".repeat(151)).is_err());
    }
}
