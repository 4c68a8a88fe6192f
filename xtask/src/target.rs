//! `x86_64-target.json`, the one record of the image's target settings, and how xtask applies
//! it. Stable Rust refuses custom target JSON (`-Zjson-target-spec`) and cannot rebuild `core`
//! (`build-std`), so the image is built for the built-in `x86_64-unknown-none` and the file's
//! settings are applied on top as rustc flags. Settings that cannot be applied that way (another
//! base target, different CPU features or ABI) are refused with a clear message.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The only base target settings can be applied to.
pub(crate) const BASE_TARGET: &str = "x86_64-unknown-none";

/// The built-in target's CPU features (`rustc --print target-spec-json` on the pinned
/// toolchain). `core` is prebuilt with exactly these; changing them changes the float ABI.
pub(crate) const BUILTIN_FEATURES: &str =
    "-mmx,-sse,-sse2,-sse3,-ssse3,-sse4.1,-sse4.2,-avx,-avx2,+soft-float";

const KNOWN_KEYS: &[&str] = &[
    "comment",
    "base-target",
    "arch",
    "code-model",
    "relocation-model",
    "features",
    "disable-redzone",
    "panic-strategy",
    "linker-script",
    "link-args",
];

/// The settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetSettings {
    /// `-C code-model`.
    pub(crate) code_model: String,
    /// `-C relocation-model`.
    pub(crate) relocation_model: String,
    /// The linker script, relative to the workspace root.
    pub(crate) linker_script: PathBuf,
    /// Extra linker arguments.
    pub(crate) link_args: Vec<String>,
}

impl TargetSettings {
    /// Reads and validates the file.
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and validates the JSON text.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let object = value
            .as_object()
            .ok_or("the top level must be a JSON object")?;
        for key in object.keys() {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "setting `{key}` cannot be applied on stable Rust by xtask (known: {})",
                    KNOWN_KEYS.join(", ")
                ));
            }
        }
        let string = |key: &str| -> Result<String, String> {
            object
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(format!("`{key}` is missing or not a string"))
        };
        let base = string("base-target")?;
        if base != BASE_TARGET {
            return Err(format!(
                "base target `{base}` cannot be used: stable Rust cannot build `core` for a \
                 custom target, so settings can only be applied on top of the built-in \
                 `{BASE_TARGET}`"
            ));
        }
        if string("arch")? != "x86_64" {
            return Err("`arch` must be x86_64 (the base target's)".into());
        }
        let features = string("features")?;
        if features != BUILTIN_FEATURES {
            return Err(format!(
                "features `{features}` differ from the built-in target's `{BUILTIN_FEATURES}`: \
                 the prebuilt `core` uses those, and changing them (float ABI) needs build-std, \
                 which is nightly-only"
            ));
        }
        if object.get("disable-redzone").and_then(Value::as_bool) != Some(true) {
            return Err(
                "`disable-redzone` must be true (interrupts would corrupt the red zone; \
                        the built-in target already disables it)"
                    .into(),
            );
        }
        if string("panic-strategy")? != "abort" {
            return Err("`panic-strategy` must be abort (no unwinding without std)".into());
        }
        let code_model = string("code-model")?;
        if !["small", "kernel", "medium", "large"].contains(&code_model.as_str()) {
            return Err(format!("unknown code model `{code_model}`"));
        }
        let relocation_model = string("relocation-model")?;
        if !["static", "pic", "pie"].contains(&relocation_model.as_str()) {
            return Err(format!(
                "relocation model `{relocation_model}` cannot be applied (static, pic or pie)"
            ));
        }
        let linker_script = PathBuf::from(string("linker-script")?);
        let link_args = match object.get("link-args") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or("`link-args` must be strings")
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("`link-args` must be an array of strings".into()),
        };
        Ok(Self {
            code_model,
            relocation_model,
            linker_script,
            link_args,
        })
    }

    /// The rustc flags that apply these settings, with the linker script made absolute.
    pub(crate) fn rustflags(&self, root: &Path) -> Vec<String> {
        let mut flags = vec![
            format!("-Ccode-model={}", self.code_model),
            format!("-Crelocation-model={}", self.relocation_model),
            format!("-Clink-arg=-T{}", root.join(&self.linker_script).display()),
        ];
        flags.extend(self.link_args.iter().map(|arg| format!("-Clink-arg={arg}")));
        flags
    }

    /// The `KERNEL_BASE = ...;` the linker script sets, which the built image must start at.
    pub(crate) fn kernel_base(&self, root: &Path) -> Result<u64, String> {
        let path = root.join(&self.linker_script);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read linker script {}: {e}", path.display()))?;
        kernel_base_from_script(&text)
            .ok_or(format!("{} sets no `KERNEL_BASE = 0x...;`", path.display()))
    }
}

/// Finds `KERNEL_BASE = 0x...;` in a linker script.
pub(crate) fn kernel_base_from_script(script: &str) -> Option<u64> {
    script.lines().find_map(|line| {
        let rest = line
            .trim()
            .strip_prefix("KERNEL_BASE")?
            .trim()
            .strip_prefix('=')?;
        let value = rest.trim().strip_suffix(';')?.trim();
        u64::from_str_radix(value.strip_prefix("0x")?, 16).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    fn with(key: &str, value: Value) -> String {
        let text = std::fs::read_to_string(root().join("x86_64-target.json")).unwrap();
        let mut json: Value = serde_json::from_str(&text).unwrap();
        json[key] = value;
        json.to_string()
    }

    #[test]
    fn the_committed_file_is_valid_and_gives_flags() {
        let settings = TargetSettings::load(&root().join("x86_64-target.json")).unwrap();
        let flags = settings.rustflags(Path::new("/r"));
        assert!(
            flags.contains(&"-Ccode-model=small".to_string()),
            "{flags:?}"
        );
        assert!(
            flags.contains(&"-Crelocation-model=static".to_string()),
            "{flags:?}"
        );
        assert!(
            flags.contains(&"-Clink-arg=-T/r/boot/linker.ld".to_string()),
            "{flags:?}"
        );
        assert_eq!(settings.kernel_base(&root()).unwrap(), 0x20_0000);
    }

    #[test]
    fn another_base_target_is_refused() {
        let error = TargetSettings::parse(&with("base-target", "x86_64-moat".into())).unwrap_err();
        assert!(error.contains("stable Rust cannot build `core`"), "{error}");
    }

    #[test]
    fn changed_features_are_refused() {
        let error = TargetSettings::parse(&with("features", "+sse,+sse2".into())).unwrap_err();
        assert!(error.contains("differ from the built-in"), "{error}");
    }

    #[test]
    fn unknown_settings_and_bad_values_are_refused() {
        assert!(TargetSettings::parse(&with("data-layout", "e-m:e".into())).is_err());
        assert!(TargetSettings::parse(&with("code-model", "tiny".into())).is_err());
        assert!(TargetSettings::parse(&with("relocation-model", "ropi".into())).is_err());
        assert!(TargetSettings::parse(&with("disable-redzone", false.into())).is_err());
        assert!(TargetSettings::parse(&with("panic-strategy", "unwind".into())).is_err());
        assert!(TargetSettings::parse(&with("link-args", 3.into())).is_err());
        assert!(TargetSettings::parse("[1]").is_err());
        assert!(TargetSettings::parse("{").is_err());
    }

    #[test]
    fn builtin_features_match_the_installed_toolchain() {
        // Every feature the file turns off must really be off in the built-in target.
        let Ok(output) = std::process::Command::new("rustc")
            .args(["--print", "cfg", "--target", BASE_TARGET])
            .output()
        else {
            panic!("rustc not runnable");
        };
        let cfg = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "rustc --print cfg failed: {cfg}");
        for feature in BUILTIN_FEATURES.split(',') {
            if let Some(off) = feature.strip_prefix('-') {
                assert!(
                    !cfg.contains(&format!("target_feature=\"{off}\"")),
                    "{off} is on: {cfg}"
                );
            }
        }
    }

    #[test]
    fn kernel_base_parsing() {
        assert_eq!(
            kernel_base_from_script("  KERNEL_BASE = 0x200000;\n"),
            Some(0x200000)
        );
        assert_eq!(kernel_base_from_script("KERNEL_BASE=0x1000;"), Some(0x1000));
        assert_eq!(kernel_base_from_script("BASE = 0x1000;"), None);
    }
}
