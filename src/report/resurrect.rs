//! Rendering a resurrect: the source and why, each pm2 call, each app's
//! state after the watch window.

use crate::report::style::{BOLD, DIM, GREEN, RED};
use crate::resurrect::Outcome;
use std::io::{self, Write};

pub fn render(out: &mut dyn Write, o: &Outcome) -> io::Result<()> {
    writeln!(
        out,
        "{BOLD}resurrect{BOLD:#} from {} {DIM}({}){DIM:#}",
        o.source.describe(),
        o.why
    )?;
    if let Some(c) = &o.dump_copy {
        writeln!(out, "  PM2 read a validated copy: {}", c.display())?;
    }
    for c in &o.calls {
        let status = match (c.timed_out, c.status) {
            (true, _) => "killed at its deadline".to_string(),
            (false, Some(s)) => format!("exit {s}"),
            (false, None) => "did not run".to_string(),
        };
        writeln!(out, "  $ pm2 {}  {DIM}{status}{DIM:#}", c.args.join(" "))?;
    }
    for a in &o.apps {
        let (mark, st) = if a.stable {
            ("✓", GREEN)
        } else {
            ("✗", RED)
        };
        writeln!(
            out,
            "  {st}{mark}{st:#} {:<24} {:<10} {} restart(s) while watched{}",
            a.app,
            a.status.as_deref().unwrap_or("?"),
            a.restarts_during_watch,
            a.cause
                .as_ref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        )?;
    }
    for n in &o.notes {
        writeln!(out, "  note: {n}")?;
    }
    if o.saved {
        writeln!(
            out,
            "saved with `pm2 save` (the previous dump was kept next to the copy)"
        )?;
    } else if o.exit_code == 0 {
        writeln!(
            out,
            "every app is stable; run with --save (or `pm2 save`) to keep this list"
        )?;
    }
    Ok(())
}

pub fn document(o: &Outcome) -> serde_json::Value {
    let mut v = serde_json::to_value(o).unwrap_or_default();
    v["schema_version"] = 1.into();
    v
}
