//! PyTorch's fixtures (`tests/fixtures/torch/`, float64 safetensors files written once by the
//! scripts there) and the comparison the tests make with them.

use std::collections::HashMap;

/// The tensors and metadata of one fixture file.
pub struct Fixture {
    tensors: HashMap<String, (Vec<usize>, Vec<f64>)>,
    meta: HashMap<String, String>,
}

impl Fixture {
    pub fn open(name: &str) -> Fixture {
        let path = format!("{}/tests/fixtures/torch/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().clone().unwrap_or_default().into_iter().collect();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                assert_eq!(view.dtype(), safetensors::Dtype::F64, "{name}");
                let values = view.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
                (name, (view.shape().to_vec(), values))
            })
            .collect();
        Fixture { tensors, meta }
    }

    pub fn get(&self, name: &str) -> &[f64] {
        &self.tensors.get(name).unwrap_or_else(|| panic!("no tensor {name}")).1
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The cases of `kind` and their configurations.
    pub fn cases(&self, kind: &str) -> Vec<(String, HashMap<String, usize>)> {
        let mut cases: Vec<(String, HashMap<String, usize>)> = self
            .meta
            .iter()
            .filter_map(|(name, config)| {
                let pairs: HashMap<&str, &str> = config.split(' ').filter_map(|kv| kv.split_once('=')).collect();
                (pairs.get("kind") == Some(&kind)).then(|| {
                    let numbers = pairs.iter().filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?))).collect();
                    (name.clone(), numbers)
                })
            })
            .collect();
        cases.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(!cases.is_empty(), "no {kind} cases");
        cases
    }
}

/// `a` equals PyTorch's `b` to 1e-10 relative (NaN where `b` is NaN).
pub fn close(what: &str, a: &[f64], b: &[f64]) {
    close_to(what, a, b, 1e-10)
}

/// `a` equals PyTorch's `b` to `tolerance` relative to the largest magnitude in `b` (NaN where
/// `b` is NaN).
pub fn close_to(what: &str, a: &[f64], b: &[f64], tolerance: f64) {
    assert_eq!(a.len(), b.len(), "{what}: {} values where PyTorch has {}", a.len(), b.len());
    let scale = b.iter().filter(|v| v.is_finite()).fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let same = if y.is_nan() { x.is_nan() } else { (x - y).abs() <= tolerance * scale };
        assert!(same, "{what}[{i}]: hdm {x:e}, PyTorch {y:e}");
    }
}
