//! The parameter store: named tensors that live outside the tape.
//!
//! See the [`nn` module documentation](super) for the per-step cycle
//! (bind, forward, backward, read gradients, update).

use crate::error::{Error, Result};
use crate::float::Float;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// The handle a module keeps for one of its parameters: an index into [`Parameters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(usize);

impl ParamId {
    /// The position of the parameter in its store (also its position in [`Gradients`]).
    pub fn index(self) -> usize {
        self.0
    }
}

/// An ordered set of named parameter tensors.
///
/// Names are dotted paths such as `"encoder.0.weight"` (module, layer index, role),
/// so a checkpoint written from the store is readable on its own. Order is the order
/// of registration, and it is the order of [`Gradients`] and of optimizer state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parameters<T: Float> {
    names: Vec<String>,
    values: Vec<Tensor<T>>,
}

impl<T: Float> Parameters<T> {
    /// An empty store.
    pub fn new() -> Self {
        Parameters {
            names: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Registers a tensor under a new name; errors if the name is taken or empty.
    pub fn add(&mut self, name: impl Into<String>, value: Tensor<T>) -> Result<ParamId> {
        let name = name.into();
        if name.is_empty() {
            return Err(Error::invalid_argument(
                "Parameters::add",
                "a parameter name must not be empty",
            ));
        }
        if self.id(&name).is_some() {
            return Err(Error::invalid_argument(
                "Parameters::add",
                format!("a parameter named `{name}` already exists"),
            ));
        }
        self.names.push(name);
        self.values.push(value);
        Ok(ParamId(self.values.len() - 1))
    }

    /// Number of parameter tensors.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the store holds no parameter.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Total number of scalar parameters (the "parameter count" of a model).
    pub fn num_elements(&self) -> usize {
        self.values.iter().map(Tensor::len).sum()
    }

    /// The id of the parameter called `name`, if any.
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.names.iter().position(|n| n == name).map(ParamId)
    }

    /// The name of a parameter.
    pub fn name(&self, id: ParamId) -> &str {
        &self.names[id.0]
    }

    /// The value of a parameter.
    pub fn get(&self, id: ParamId) -> &Tensor<T> {
        &self.values[id.0]
    }

    /// The value of a parameter, mutably (optimizers write through this).
    pub fn get_mut(&mut self, id: ParamId) -> &mut Tensor<T> {
        &mut self.values[id.0]
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// `(name, value)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor<T>)> {
        self.names.iter().map(String::as_str).zip(&self.values)
    }

    /// `(id, value)` pairs with mutable values, in order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ParamId, &mut Tensor<T>)> {
        self.values
            .iter_mut()
            .enumerate()
            .map(|(i, v)| (ParamId(i), v))
    }

    /// Replaces the value of the parameter called `name` (for loading checkpoints);
    /// errors if there is no such parameter or the shape differs.
    pub fn set(&mut self, name: &str, value: Tensor<T>) -> Result<()> {
        let id = self.id(name).ok_or_else(|| {
            Error::invalid_argument("Parameters::set", format!("no parameter named `{name}`"))
        })?;
        let current = self.values[id.0].shape();
        if current != value.shape() {
            return Err(Error::shape_mismatch(
                format!("Parameters::set({name})"),
                current,
                value.shape(),
                "a loaded parameter must keep its shape",
            ));
        }
        self.values[id.0] = value;
        Ok(())
    }

    /// Feeds every parameter into `tape` as a variable named after it, and returns
    /// the handles. Do this once per step, after `tape.clear()`.
    pub fn bind<'t>(&self, tape: &'t Tape<T>) -> BoundParameters<'t, T> {
        self.bind_by(|name, value| tape.variable_named(name, value))
    }

    /// [`Parameters::bind`] for parameters known to be finite (every one checked by the
    /// optimiser step that last wrote them), which are copied without being checked.
    pub(crate) fn bind_known_finite<'t>(&self, tape: &'t Tape<T>) -> BoundParameters<'t, T> {
        self.bind_by(|name, value| tape.variable_named_known_finite(name, value))
    }

    /// Every parameter fed to a tape by `bind` (given its name and value).
    fn bind_by<'t>(
        &self,
        mut bind: impl FnMut(&str, &Tensor<T>) -> Var<'t, T>,
    ) -> BoundParameters<'t, T> {
        let vars = self
            .names
            .iter()
            .zip(&self.values)
            .map(|(name, value)| bind(name, value))
            .collect();
        BoundParameters { vars }
    }
}

impl<T: Float> Parameters<T> {
    /// Like [`Parameters::bind`], but *moves* every parameter onto `tape` rather than
    /// copying it ([`Tape::variable_moved`]): until
    /// [`BoundParameters::restore_into`] gives them back, this store holds placeholders
    /// of the right shapes with unspecified values. A training step that restores them
    /// before it reads the store again (on every path, errors included) saves copying
    /// every parameter in each step.
    pub fn bind_moved<'t>(&mut self, tape: &'t Tape<T>) -> BoundParameters<'t, T> {
        self.bind_moved_by(|name, value| tape.variable_moved(name, value))
    }

    /// [`Parameters::bind_moved`] for parameters known to be finite (every one checked
    /// by the optimiser step that last wrote them), which are not read again to check.
    pub(crate) fn bind_moved_known_finite<'t>(
        &mut self,
        tape: &'t Tape<T>,
    ) -> BoundParameters<'t, T> {
        self.bind_moved_by(|name, value| tape.variable_moved_known_finite(name, value))
    }

    /// Every parameter moved onto a tape by `bind` (given its name and value).
    fn bind_moved_by<'t>(
        &mut self,
        mut bind: impl FnMut(&str, &mut Tensor<T>) -> Var<'t, T>,
    ) -> BoundParameters<'t, T> {
        let vars = self
            .names
            .iter()
            .zip(&mut self.values)
            .map(|(name, value)| bind(name, value))
            .collect();
        BoundParameters { vars }
    }
}

/// The parameters of one step, fed into one tape: one [`Var`] per [`ParamId`].
#[derive(Debug, Clone)]
pub struct BoundParameters<'t, T: Float> {
    vars: Vec<Var<'t, T>>,
}

impl<'t, T: Float> BoundParameters<'t, T> {
    /// Wraps variables fed in some other way, one per parameter in the store's order
    /// (used by gradient checks, which feed the parameters in themselves).
    pub fn from_vars(vars: Vec<Var<'t, T>>) -> Self {
        BoundParameters { vars }
    }

    /// The variable of a parameter on this step's tape.
    pub fn var(&self, id: ParamId) -> Var<'t, T> {
        self.vars[id.0]
    }

    /// Number of bound parameters.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// True when nothing is bound.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Gives back the values [`Parameters::bind_moved`] moved onto the tape (exchanging
    /// each with the placeholder the store holds). Harmless for parameters that were
    /// copied or never fed (a poisoned tape): those keep their values.
    pub fn restore_into(&self, params: &mut Parameters<T>) {
        for (var, value) in self.vars.iter().zip(&mut params.values) {
            var.swap_value(value);
        }
    }

    /// Copies the gradients from the last `tape.backward` out of the tape, one per
    /// parameter and in the store's order. A parameter the loss does not depend on
    /// gets a zero gradient.
    pub fn gradients(&self) -> Gradients<T> {
        let grads = self
            .vars
            .iter()
            .map(|v| {
                v.grad().unwrap_or_else(|| {
                    let shape = v.shape();
                    Tensor::zeros(shape.rows, shape.cols)
                })
            })
            .collect();
        Gradients { grads }
    }

    /// Like [`BoundParameters::gradients`], but copies into `grads`, reusing its
    /// buffers when they already have the right shapes (so a training loop that keeps
    /// one `Gradients` allocates nothing here after its first step).
    pub fn gradients_into(&self, grads: &mut Gradients<T>) {
        if !self.fits(grads) {
            *grads = self.gradients();
            return;
        }
        for (grad, var) in grads.grads.iter_mut().zip(&self.vars) {
            let copied = var.with_grad(|g| grad.as_mut_slice().copy_from_slice(g.as_slice()));
            if copied.is_none() {
                grad.fill_zero();
            }
        }
    }

    /// Like [`BoundParameters::gradients_into`], but *moves* the gradients out of the
    /// tape instead of copying them: each is exchanged with the matching buffer of
    /// `grads` ([`Var::swap_grad`]), so the tape's gradients of these parameters hold
    /// stale values afterwards. For training loops, which read the gradients from
    /// `grads` and then clear the tape: it saves copying every parameter's gradient
    /// each step.
    pub fn take_gradients_into(&self, grads: &mut Gradients<T>) {
        if !self.fits(grads) {
            *grads = self.gradients();
            return;
        }
        for (grad, var) in grads.grads.iter_mut().zip(&self.vars) {
            if !var.swap_grad(grad) {
                grad.fill_zero();
            }
        }
    }

    /// True if `grads` has one buffer per parameter, of its shape.
    fn fits(&self, grads: &Gradients<T>) -> bool {
        grads.grads.len() == self.vars.len()
            && grads
                .grads
                .iter()
                .zip(&self.vars)
                .all(|(g, v)| g.shape() == v.shape())
    }
}

/// One gradient tensor per parameter, in the order of the [`Parameters`] store.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients<T: Float> {
    grads: Vec<Tensor<T>>,
}

impl<T: Float> Gradients<T> {
    /// Wraps gradients computed some other way (they must follow the store's order).
    pub fn from_tensors(grads: Vec<Tensor<T>>) -> Self {
        Gradients { grads }
    }

    /// The gradient of one parameter.
    pub fn get(&self, id: ParamId) -> &Tensor<T> {
        &self.grads[id.0]
    }

    /// Number of gradient tensors.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }

    /// The gradients, in order.
    pub fn as_slice(&self) -> &[Tensor<T>] {
        &self.grads
    }

    /// The gradients, in order, mutably (clipping rescales through this).
    pub fn as_mut_slice(&mut self) -> &mut [Tensor<T>] {
        &mut self.grads
    }

    /// The Euclidean norm of all gradients taken together, `sqrt(sum g^2)`, in `f64`.
    pub fn global_norm(&self) -> f64 {
        self.grads
            .iter()
            .flat_map(|g| g.as_slice())
            .map(|&x| x.to_f64() * x.to_f64())
            .sum::<f64>()
            .sqrt()
    }

    /// Sets these gradients to the mean of `parts` (one set per shard of a data-parallel
    /// step, all of the same shapes): every value is the sum over `parts` in their order,
    /// times `1 / parts.len()` (exact when the count is a power of two). Fixed chunks
    /// of values are shared out among the threads
    /// ([`num_threads`](crate::kernels::num_threads)), so the result does not depend on
    /// their number.
    ///
    /// ```
    /// use gumbelgrad::nn::Gradients;
    /// use gumbelgrad::Tensor;
    /// let a = Gradients::from_tensors(vec![Tensor::from_vec(1, 2, vec![1.0f32, 2.0])?]);
    /// let b = Gradients::from_tensors(vec![Tensor::from_vec(1, 2, vec![3.0f32, -2.0])?]);
    /// let mut mean = Gradients::from_tensors(Vec::new());
    /// mean.set_mean_of(&[a, b]);
    /// assert_eq!(mean.as_slice()[0].as_slice(), &[2.0, 0.0]);
    /// # Ok::<(), gumbelgrad::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `parts` is empty or its sets differ in count or shapes (a programming error:
    /// the shards of one model).
    pub fn set_mean_of(&mut self, parts: &[Gradients<T>]) {
        const CHUNK: usize = 1 << 16;
        let first = parts.first().expect("set_mean_of needs at least one part");
        for part in parts {
            assert!(
                part.same_shapes(first),
                "set_mean_of: the parts must have the same shapes"
            );
        }
        if !self.same_shapes(first) {
            self.grads = first
                .grads
                .iter()
                .map(|g| Tensor::zeros_like_shape(g.shape()))
                .collect();
        }
        let scale = T::from_f64(1.0 / parts.len() as f64);
        let chunks = self.grads.iter_mut().enumerate().flat_map(|(index, grad)| {
            grad.as_mut_slice()
                .chunks_mut(CHUNK)
                .enumerate()
                .map(move |(chunk, out)| (index, chunk * CHUNK, out))
        });
        crate::kernels::threads::for_each_shared(chunks, |(index, start, out)| {
            let end = start + out.len();
            out.copy_from_slice(&first.grads[index].as_slice()[start..end]);
            for part in &parts[1..] {
                for (sum, &value) in out
                    .iter_mut()
                    .zip(&part.grads[index].as_slice()[start..end])
                {
                    *sum += value;
                }
            }
            for value in out.iter_mut() {
                *value *= scale;
            }
        });
    }

    /// True if `other` has as many gradients as these, each of the same shape.
    fn same_shapes(&self, other: &Gradients<T>) -> bool {
        self.grads.len() == other.grads.len()
            && self
                .grads
                .iter()
                .zip(&other.grads)
                .all(|(a, b)| a.shape() == b.shape())
    }

    /// Checks that these gradients fit `params` (same count, same shapes).
    pub fn check_matches(&self, params: &Parameters<T>, op: &str) -> Result<()> {
        if self.grads.len() != params.len() {
            return Err(Error::invalid_argument(
                op,
                format!(
                    "{} gradients for {} parameters",
                    self.grads.len(),
                    params.len()
                ),
            ));
        }
        for ((name, value), grad) in params.iter().zip(&self.grads) {
            if value.shape() != grad.shape() {
                return Err(Error::shape_mismatch(
                    format!("{op} ({name})"),
                    value.shape(),
                    grad.shape(),
                    "a gradient must have its parameter's shape",
                ));
            }
        }
        Ok(())
    }
}
