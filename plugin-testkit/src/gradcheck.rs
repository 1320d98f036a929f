//! Finite-difference gradient checks.
//!
//! [`finite_difference`] differentiates any function numerically. [`check_model_gradients`]
//! checks a model's backward pass through the plugin interface alone: the gradients it exports
//! ([`StateGroup::GRADIENTS`]) against central differences of its own `loss`, with the parameters
//! moved through `import_state(MODEL)`, at the coordinates with the largest gradients and at
//! seeded random ones. It also checks that `backward` adds to the gradients rather than replacing
//! them. The model's parameters are restored afterwards.

use neuron_plugin_api::{DType, ModelPlugin, StateGroup, Tensor, TokenBatch};
use neuron_plugin_host::loader::PluginModel;

use crate::reference::Rng;

/// Central differences of `f` at `x`, one coordinate at a time: `(f(x + eps e_i) - f(x - eps e_i)) / 2 eps`.
pub fn finite_difference(mut f: impl FnMut(&[f64]) -> f64, x: &[f64], eps: f64) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            probe[i] = x[i] + eps;
            let up = f(&probe);
            probe[i] = x[i] - eps;
            let down = f(&probe);
            probe[i] = x[i];
            (up - down) / (2.0 * eps)
        })
        .collect()
}

/// The calls a gradient check makes, on an in-process model (`dyn ModelPlugin`) or on one built
/// through the loader ([`PluginModel`]). Errors are the plugin's one-line messages.
pub trait Trainable {
    fn loss(&mut self, batch: TokenBatch<'_>, targets: &[u32]) -> Result<f32, String>;
    fn backward(&mut self) -> Result<(), String>;
    fn zero_grad(&mut self) -> Result<(), String>;
    fn export_state(&mut self, group: StateGroup) -> Result<Vec<Tensor>, String>;
    fn import_state(&mut self, group: StateGroup, tensors: &[Tensor]) -> Result<(), String>;
}

impl Trainable for dyn ModelPlugin {
    fn loss(&mut self, batch: TokenBatch<'_>, targets: &[u32]) -> Result<f32, String> {
        ModelPlugin::loss(self, batch, targets).map_err(|e| e.to_string())
    }
    fn backward(&mut self) -> Result<(), String> {
        ModelPlugin::backward(self).map_err(|e| e.to_string())
    }
    fn zero_grad(&mut self) -> Result<(), String> {
        ModelPlugin::zero_grad(self).map_err(|e| e.to_string())
    }
    fn export_state(&mut self, group: StateGroup) -> Result<Vec<Tensor>, String> {
        ModelPlugin::export_state(self, group).map_err(|e| e.to_string())
    }
    fn import_state(&mut self, group: StateGroup, tensors: &[Tensor]) -> Result<(), String> {
        ModelPlugin::import_state(self, group, tensors).map_err(|e| e.to_string())
    }
}

impl Trainable for PluginModel {
    fn loss(&mut self, batch: TokenBatch<'_>, targets: &[u32]) -> Result<f32, String> {
        PluginModel::loss(self, batch, targets).map_err(|e| e.to_string())
    }
    fn backward(&mut self) -> Result<(), String> {
        PluginModel::backward(self).map_err(|e| e.to_string())
    }
    fn zero_grad(&mut self) -> Result<(), String> {
        PluginModel::zero_grad(self).map_err(|e| e.to_string())
    }
    fn export_state(&mut self, group: StateGroup) -> Result<Vec<Tensor>, String> {
        PluginModel::export_state(self, group).map_err(|e| e.to_string())
    }
    fn import_state(&mut self, group: StateGroup, tensors: &[Tensor]) -> Result<(), String> {
        PluginModel::import_state(self, group, tensors).map_err(|e| e.to_string())
    }
}

/// How a model's gradients are checked.
#[derive(Clone, Debug)]
pub struct GradCheck {
    /// Coordinates checked: half the largest gradients, half seeded random ones.
    pub coordinates: usize,
    /// The step of the central difference, in parameter units.
    pub eps: f32,
    /// Allowed difference relative to the larger of the two values ...
    pub rtol: f64,
    /// ... plus this fraction of the largest gradient (finite differences of an f32 loss are
    /// noisy where the gradient is small).
    pub atol_fraction: f64,
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        Self { coordinates: 16, eps: 1e-2, rtol: 0.05, atol_fraction: 0.02, seed: 17 }
    }
}

/// What a passing check measured.
#[derive(Clone, Debug)]
pub struct GradReport {
    pub checked: usize,
    /// The largest |gradient| the model exported.
    pub largest: f64,
    /// The worst |numeric - analytic| over the tolerance's scale (below 1 passes).
    pub worst_ratio: f64,
}

/// Checks `model`'s gradients of its loss on `batch`/`targets` (see the module documentation).
/// The error is one line naming the first coordinate that disagrees, or what the model lacks.
pub fn check_model_gradients(
    model: &mut (impl Trainable + ?Sized),
    batch: TokenBatch<'_>,
    targets: &[u32],
    options: &GradCheck,
) -> Result<GradReport, String> {
    model.zero_grad()?;
    model.loss(batch, targets)?;
    model.backward()?;
    let grads = model.export_state(StateGroup::GRADIENTS)?;
    if grads.is_empty() {
        return Err("the model exports no gradients (StateGroup::GRADIENTS): export them, named like its parameters, so backward can be checked".into());
    }
    let params = model.export_state(StateGroup::MODEL)?;
    let mut coords: Vec<(usize, usize, f64)> = Vec::new(); // (parameter tensor, element, gradient)
    for g in &grads {
        let Some(pi) = params.iter().position(|p| p.name == g.name) else {
            return Err(format!("exported gradient `{}` names no parameter of the model", g.name));
        };
        if g.dtype != DType::F32 || params[pi].dtype != DType::F32 {
            continue;
        }
        if g.shape != params[pi].shape {
            return Err(format!(
                "gradient `{}` has shape {:?}, its parameter {:?}",
                g.name,
                g.shape.as_slice(),
                params[pi].shape.as_slice()
            ));
        }
        let values = g.to_f32().map_err(|e| e.to_string())?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!("gradient `{}` element {i} is {}", g.name, values[i]));
        }
        coords.extend(values.iter().enumerate().map(|(i, &v)| (pi, i, v as f64)));
    }
    let largest = coords.iter().map(|c| c.2.abs()).fold(0.0, f64::max);
    if coords.is_empty() || largest == 0.0 {
        return Err("every exported gradient is zero after loss and backward; backward computed nothing".into());
    }

    // backward adds: a second backward of the same loss doubles the gradients.
    model.loss(batch, targets)?;
    model.backward()?;
    let twice = model.export_state(StateGroup::GRADIENTS)?;
    for (g, g2) in grads.iter().zip(&twice) {
        if g.dtype != DType::F32 {
            continue;
        }
        let doubled: Vec<f32> = g.to_f32().map_err(|e| e.to_string())?.iter().map(|v| 2.0 * v).collect();
        let got = g2.to_f32().map_err(|e| e.to_string())?;
        if let Some(d) = crate::reference::worst_difference(&got, &doubled, 1e-3, 1e-4 * largest) {
            return Err(format!(
                "a second backward without zero_grad must add to the gradients, but `{}` is not doubled: {d}",
                g.name
            ));
        }
    }
    model.zero_grad()?;

    // The largest half, then seeded random coordinates.
    let mut order: Vec<usize> = (0..coords.len()).collect();
    order.sort_by(|&a, &b| coords[b].2.abs().total_cmp(&coords[a].2.abs()));
    let mut chosen: Vec<usize> = order.iter().copied().take(options.coordinates.div_ceil(2)).collect();
    let mut rng = Rng::new(options.seed);
    let mut tries = 0;
    while chosen.len() < options.coordinates.min(coords.len()) && tries < 100 * options.coordinates {
        let c = rng.below(coords.len() as u32) as usize;
        if !chosen.contains(&c) {
            chosen.push(c);
        }
        tries += 1;
    }

    let mut worst_ratio: f64 = 0.0;
    let mut failure = None;
    // The parameters as imported for each probe: all as exported but the one tensor moved.
    let mut state = params.clone();
    for &c in &chosen {
        let (pi, i, analytic) = coords[c];
        let mut values = params[pi].to_f32().map_err(|e| e.to_string())?;
        let theta = values[i];
        let (up, down) = (theta + options.eps, theta - options.eps);
        let mut loss_at = |value: f32| {
            values[i] = value;
            state[pi] = Tensor::f32(params[pi].name.as_str(), &params[pi].shape, &values);
            model.import_state(StateGroup::MODEL, &state)?;
            model.loss(batch, targets)
        };
        let (l_up, l_down) = (loss_at(up), loss_at(down));
        state[pi] = params[pi].clone();
        let (l_up, l_down) = match (l_up, l_down) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                failure = Some(e);
                break;
            }
        };
        let numeric = (l_up as f64 - l_down as f64) / (up as f64 - down as f64);
        let scale = options.rtol * numeric.abs().max(analytic.abs()) + options.atol_fraction * largest;
        let ratio = (numeric - analytic).abs() / scale;
        let within = ratio <= 1.0; // false for NaN
        if !within {
            failure = Some(format!(
                "d loss / d {}[{i}]: backward gives {analytic:.6e}, central differences {numeric:.6e} (eps {}); the gradient is wrong",
                params[pi].name, options.eps
            ));
            break;
        }
        worst_ratio = worst_ratio.max(ratio);
    }
    model.import_state(StateGroup::MODEL, &params)?;
    if let Some(f) = failure {
        return Err(f);
    }
    Ok(GradReport { checked: chosen.len(), largest, worst_ratio })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_differences_of_a_known_function() {
        // f = x0^2 * x1 + sin(x1): grad = (2 x0 x1, x0^2 + cos x1)
        let g = finite_difference(|x| x[0] * x[0] * x[1] + x[1].sin(), &[1.5, -0.5], 1e-5);
        assert!((g[0] - 2.0 * 1.5 * -0.5).abs() < 1e-6, "{g:?}");
        assert!((g[1] - (2.25 + (-0.5f64).cos())).abs() < 1e-6, "{g:?}");
    }
}
