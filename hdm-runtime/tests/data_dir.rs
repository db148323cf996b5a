//! `resolve_data_dir`: `--data`, else `HDM_DATA_DIR`, else `data/mnist`. Alone in its test binary
//! because it changes the process environment.

use std::path::PathBuf;

use hdm_runtime::data::resolve_data_dir;

#[test]
fn command_line_then_environment_then_default() {
    let saved = std::env::var_os("HDM_DATA_DIR");
    // SAFETY (for editions where this is unsafe): this binary's only test; no other thread reads
    // the environment meanwhile.
    std::env::set_var("HDM_DATA_DIR", "/from/env");
    assert_eq!(resolve_data_dir(Some("cli/dir".into())), PathBuf::from("cli/dir"));
    assert_eq!(resolve_data_dir(None), PathBuf::from("/from/env"));
    std::env::set_var("HDM_DATA_DIR", "");
    assert_eq!(resolve_data_dir(None), PathBuf::from("data/mnist"));
    std::env::remove_var("HDM_DATA_DIR");
    assert_eq!(resolve_data_dir(None), PathBuf::from("data/mnist"));
    if let Some(v) = saved {
        std::env::set_var("HDM_DATA_DIR", v);
    }
}
