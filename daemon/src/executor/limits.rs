use std::time::Duration;

/// Hard limits of one attempt. Every breach ends the attempt with its own
/// [`AttemptError`](super::AttemptError) kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (roughly: wasm instructions) the attempt may burn.
    pub fuel: u64,
    /// Total linear memory across all of the component's memories, bytes.
    pub memory_bytes: usize,
    /// Wall-clock time from instantiation to return.
    pub timeout: Duration,
    /// Bytes of log lines, stdout and stderr together.
    pub log_bytes: usize,
    /// Bytes of staged dataset writes (names + keys + values).
    pub output_bytes: usize,
    /// Largest checkpoint the task may save.
    pub checkpoint_bytes: usize,
    /// Core instances, tables and memories a component may create.
    pub instances: usize,
    pub tables: usize,
    pub memories: usize,
    /// Elements per table.
    pub table_elements: usize,
    /// Outbound HTTP: the allowlists that decide each request and its
    /// per-attempt limits. The default allows no request.
    pub egress: crate::egress::Egress,
    /// Bytes of objects an attempt may stage in object storage.
    pub object_bytes: u64,
    /// The containers (object-storage connections) the attempt may use.
    pub objects: super::blob::ObjectAccess,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 10_000_000_000,
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(60),
            log_bytes: 1 << 20,
            output_bytes: 64 << 20,
            checkpoint_bytes: 1 << 20,
            instances: 64,
            tables: 64,
            memories: 64,
            table_elements: 1 << 20,
            egress: crate::egress::Egress::default(),
            object_bytes: 4 << 30,
            objects: Default::default(),
        }
    }
}

/// Enforces the memory and table limits of one store and remembers whether
/// the memory cap was hit: a guest whose `memory.grow` fails usually aborts
/// with a plain `unreachable` trap, and only this flag tells that apart from
/// a bug.
#[derive(Debug)]
pub struct Limiter {
    memory_max: usize,
    memory_used: usize,
    memory_peak: usize,
    memory_hit: bool,
    table_elements: usize,
    instances: usize,
    tables: usize,
    memories: usize,
}

impl Limiter {
    pub fn new(limits: &Limits) -> Self {
        Limiter {
            memory_max: limits.memory_bytes,
            memory_used: 0,
            memory_peak: 0,
            memory_hit: false,
            table_elements: limits.table_elements,
            instances: limits.instances,
            tables: limits.tables,
            memories: limits.memories,
        }
    }

    pub fn memory_hit(&self) -> bool {
        self.memory_hit
    }

    pub fn memory_peak(&self) -> usize {
        self.memory_peak
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grown = self.memory_used - current.min(self.memory_used) + desired;
        if grown > self.memory_max {
            self.memory_hit = true;
            return Ok(false);
        }
        self.memory_used = grown;
        self.memory_peak = self.memory_peak.max(grown);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_is_capped_across_all_memories() {
        let mut l = Limiter::new(&Limits {
            memory_bytes: 100,
            ..Limits::default()
        });
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap());
        // A third memory growing to 20 would make 110 in total.
        assert!(!l.memory_growing(0, 20, None).unwrap());
        assert!(l.memory_hit());
        // The first memory growing 60 -> 70 makes exactly 100.
        assert!(l.memory_growing(60, 70, None).unwrap());
        assert_eq!(l.memory_peak(), 100);
    }
}
