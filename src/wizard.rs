//! PLACEHOLDER while the wizard is written: replace this whole file.
pub fn run_cli(_args: &crate::cli::WizardArgs) -> anyhow::Result<i32> {
    anyhow::bail!("pm2-doctor wizard is not implemented yet")
}
