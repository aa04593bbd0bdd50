//! String interning for label names and values: each distinct string is stored once
//! per tenant head and series refer to it by a 4-byte id.

use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Default)]
pub(crate) struct Symbols {
    ids: HashMap<Arc<str>, u32>,
    strs: Vec<Arc<str>>,
}

impl Symbols {
    pub(crate) fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.strs.len() as u32;
        let a: Arc<str> = Arc::from(s);
        self.strs.push(a.clone());
        self.ids.insert(a, id);
        id
    }

    pub(crate) fn str(&self, id: u32) -> &Arc<str> {
        &self.strs[id as usize]
    }

    /// A copy of every string by id (for work done outside the head's lock).
    pub(crate) fn snapshot(&self) -> Vec<Arc<str>> {
        self.strs.clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.strs.len()
    }
}
