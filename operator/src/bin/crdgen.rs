//! Prints the `CampusPlatform` CustomResourceDefinition, or writes it into a directory:
//! `crdgen` (stdout) or `crdgen <dir>` (writes `<dir>/campusplatforms.yaml`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = campus_operator::crd_yaml();
    match std::env::args().nth(1) {
        None => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Some(dir) => {
            let path = std::path::Path::new(&dir).join("campusplatforms.yaml");
            match std::fs::write(&path, yaml) {
                Ok(()) => {
                    eprintln!("wrote {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: failed to write {}: {e}", path.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}
