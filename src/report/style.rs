//! The one palette of every human output (diagnose, repair, resurrect,
//! lint, the wizard), so a mark means the same colour everywhere.
//! anstream strips it when the output is not a terminal or NO_COLOR is set.

use anstyle::{AnsiColor, Style};

pub const RED: Style = AnsiColor::Red.on_default().bold();
pub const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
pub const GREEN: Style = AnsiColor::Green.on_default();
pub const BLUE: Style = AnsiColor::Cyan.on_default();
pub const DIM: Style = Style::new().dimmed();
pub const BOLD: Style = Style::new().bold();

/// The mark and colour of one repair action's outcome.
pub fn action_mark(state: crate::repair::journal::ActionState) -> (&'static str, Style) {
    use crate::repair::journal::ActionState;
    match state {
        ActionState::Done => ("✓", GREEN),
        ActionState::Skipped => ("-", YELLOW),
        ActionState::Failed => ("✗", RED),
        _ => ("?", YELLOW),
    }
}
