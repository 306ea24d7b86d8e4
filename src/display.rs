//! Whether this process can open a window, decided before winit tries (and panics).
//!
//! This crate builds Bevy's winit backend with X11 only (no Wayland), so on Linux and the BSDs
//! a window needs `DISPLAY`. Apps that show a window (the viewer) call [`check_display`] first
//! and exit with its message instead of a winit panic and a backtrace.

/// Why no window can be opened, with what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no display to open a window on ({reason}). Run under Xvfb \
     (`xvfb-run -a cargo run --example viewer -- --screenshot shot.png`), \
     or look at the world without a window (`cargo run --example inspect -- ws://HOST:PORT`)"
)]
pub struct NoDisplay {
    /// What is missing.
    pub reason: String,
}

/// Whether a window can be opened, given the process environment.
pub fn check_display() -> Result<(), NoDisplay> {
    check_display_with(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
}

/// [`check_display`] with the environment as a function (for tests and embedders).
pub fn check_display_with(var: impl Fn(&str) -> Option<String>) -> Result<(), NoDisplay> {
    if !cfg!(all(
        unix,
        not(target_os = "macos"),
        not(target_os = "ios"),
        not(target_os = "android")
    )) {
        return Ok(());
    }
    match var("DISPLAY") {
        Some(d) if !d.trim().is_empty() => Ok(()),
        _ => {
            let wayland = var("WAYLAND_DISPLAY").is_some() || var("WAYLAND_SOCKET").is_some();
            Err(NoDisplay {
                reason: if wayland {
                    "DISPLAY is not set, and this build talks to X11 only, not Wayland".into()
                } else {
                    "DISPLAY is not set".into()
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn an_x11_display_is_enough() {
        assert_eq!(check_display_with(env(&[("DISPLAY", ":99")])), Ok(()));
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    #[test]
    fn no_display_says_what_to_do() {
        let e = check_display_with(env(&[])).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("DISPLAY is not set"), "{text}");
        assert!(
            text.contains("xvfb-run -a cargo run --example viewer"),
            "{text}"
        );
        assert!(text.contains("--example inspect"), "{text}");
        assert!(check_display_with(env(&[("DISPLAY", "  ")])).is_err());
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    #[test]
    fn wayland_alone_is_named() {
        let e = check_display_with(env(&[("WAYLAND_DISPLAY", "wayland-0")])).unwrap_err();
        assert!(e.reason.contains("X11 only"), "{e}");
    }
}
