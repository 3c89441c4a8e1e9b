//! `escalator prompt render`: the exact system block the classifier would send, rendered from
//! the template and the labelled examples as the service loads them, and its version.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::exit;

/// `escalator prompt render` arguments.
#[derive(Debug, Args)]
pub struct PromptRenderArgs {
    /// The labels rendered as examples (default: the embedded labels/labels.csv).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// The template (default: the embedded prompts/classifier.md).
    #[arg(long)]
    template: Option<PathBuf>,
    /// Print `{"version": …, "system": …}` instead.
    #[arg(long)]
    json: bool,
}

/// Runs `escalator prompt render`; returns the exit code.
pub fn main(args: PromptRenderArgs) -> ExitCode {
    let PromptRenderArgs {
        labels: labels_file,
        template,
        json,
    } = args;
    let mut settings = match exit::settings("escalator") {
        Ok(s) => s,
        Err(code) => return code,
    };
    if labels_file.is_some() {
        settings.labels_file = labels_file;
    }
    if template.is_some() {
        settings.prompt_file = template;
    }
    let prompt = match settings.load_prompt() {
        Ok((p, _)) => p,
        Err(e) => {
            eprintln!("escalator prompt render: {e:#}");
            return ExitCode::from(exit::CHECK_FAILED);
        }
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"version": prompt.version(), "system": prompt.system()})
        );
    } else {
        println!("{}", prompt.system());
        eprintln!("prompt version: {}", prompt.version());
    }
    ExitCode::SUCCESS
}
