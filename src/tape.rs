//! The tape: a define-by-run record of operations, run backwards for gradients.
//!
//! Each step of training builds the graph afresh by simply running the model code:
//! every op on a [`Var`] appends a node (op, input ids, output value) to the tape.
//! Node ids increase as nodes are recorded, so the tape is already in topological
//! order, and [`Tape::backward`] is one loop over the nodes in reverse, calling each
//! op's vector-Jacobian product (a "Wengert list").
//!
//! ```
//! use gumbelgrad::{Tape, Tensor};
//! let tape = Tape::<f64>::new();
//! let x = tape.variable(&Tensor::from_vec(1, 2, vec![3.0, 4.0])?);
//! let y = (x * x).sum(); // y = x0^2 + x1^2
//! tape.backward(y)?;
//! assert_eq!(x.grad().unwrap().as_slice(), &[6.0, 8.0]); // dy/dx = 2x
//! # Ok::<(), gumbelgrad::Error>(())
//! ```
//!
//! # Errors are sticky
//! Ops on `Var`s return `Var`s (so model code reads like maths), but they are checked
//! when recorded. The first failure (say a shape mismatch in `matmul`) is stored on the
//! tape with the op's name and both shapes; every later op is skipped, and every
//! fallible call ([`Tape::backward`], [`Var::value`], [`Tape::check`]) returns that
//! first error. Nothing downstream of a bad op ever runs a kernel.
//!
//! # Reuse
//! [`Tape::clear`] empties the tape but keeps its buffers in a pool, so the next
//! training step records into the same memory instead of allocating anew.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};

use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::op::Op;
use crate::tensor::{Shape, Tensor};

/// Index of the placeholder returned by an op that failed to record.
const POISONED: usize = usize::MAX;

/// A handle to a value on a [`Tape`]: small, `Copy`, and usable with `+ - * /`.
///
/// A `Var` borrows its tape, so a tape cannot be cleared while handles into it live.
pub struct Var<'t, T: Float> {
    tape: &'t Tape<T>,
    index: usize,
}

impl<T: Float> Clone for Var<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Float> Copy for Var<'_, T> {}

impl<T: Float> fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index == POISONED {
            write!(f, "Var(poisoned)")
        } else {
            write!(f, "Var(%{} {})", self.index, self.shape())
        }
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The tape this variable lives on.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// The node id on the tape (`%id` in dumps).
    pub fn id(&self) -> usize {
        self.index
    }

    /// True for the placeholder returned after a failed op.
    pub fn is_poisoned(&self) -> bool {
        self.index == POISONED
    }

    /// The shape of the value (`[0, 0]` for a poisoned variable).
    pub fn shape(&self) -> Shape {
        if self.is_poisoned() {
            return Shape::default();
        }
        self.tape.inner.borrow().nodes[self.index].value.shape()
    }

    /// A copy of the value, or the tape's first error.
    pub fn value(&self) -> Result<Tensor<T>> {
        self.with_value(Tensor::clone)
    }

    /// The value of a 1x1 variable.
    pub fn scalar(&self) -> Result<T> {
        self.with_value(Tensor::to_scalar)?
    }

    /// Exchanges this variable's value with `buffer` when both have the same shape, and
    /// says whether it did: how [`Parameters::bind_moved`](crate::nn::Parameters::bind_moved)
    /// gives the parameters it moved onto the tape back. Only for leaves (inputs fed
    /// with [`Tape::variable_moved`] and the like): swapping the value of a computed
    /// node would not recompute what depends on it.
    pub fn swap_value(&self, buffer: &mut Tensor<T>) -> bool {
        if self.is_poisoned() {
            return false;
        }
        let mut inner = self.tape.inner.borrow_mut();
        match inner.nodes.get_mut(self.index) {
            Some(node) if node.value.shape() == buffer.shape() => {
                std::mem::swap(&mut node.value, buffer);
                true
            }
            _ => false,
        }
    }

    /// Runs `f` on the value without copying it.
    pub fn with_value<R>(&self, f: impl FnOnce(&Tensor<T>) -> R) -> Result<R> {
        let inner = self.tape.inner.borrow();
        if self.is_poisoned() {
            return Err(inner.error.clone().expect("poisoned var without error"));
        }
        Ok(f(&inner.nodes[self.index].value))
    }

    /// The gradient from the last [`Tape::backward`], or `None` if this variable does
    /// not require one or the loss does not depend on it.
    pub fn grad(&self) -> Option<Tensor<T>> {
        self.with_grad(Tensor::clone)
    }

    /// Exchanges this variable's gradient with `buffer` when both exist and have the
    /// same shape, and says whether it did: a way to move a gradient out of the tape
    /// without copying it. Afterwards the tape holds `buffer`'s old contents as this
    /// variable's gradient, so read the gradient from `buffer` only (the tape takes the
    /// old buffer back into its pool on [`Tape::clear`]).
    pub fn swap_grad(&self, buffer: &mut Tensor<T>) -> bool {
        if self.is_poisoned() {
            return false;
        }
        let mut inner = self.tape.inner.borrow_mut();
        match inner.grads.get_mut(self.index) {
            Some(Some(grad)) if grad.shape() == buffer.shape() => {
                std::mem::swap(grad, buffer);
                true
            }
            _ => false,
        }
    }

    /// Runs `f` on the gradient without copying it (see [`Var::grad`]).
    pub fn with_grad<R>(&self, f: impl FnOnce(&Tensor<T>) -> R) -> Option<R> {
        if self.is_poisoned() {
            return None;
        }
        let inner = self.tape.inner.borrow();
        inner.grads.get(self.index)?.as_ref().map(f)
    }

    /// True if gradients flow back through this variable.
    pub fn requires_grad(&self) -> bool {
        !self.is_poisoned() && self.tape.inner.borrow().nodes[self.index].requires_grad
    }

    /// Stop-gradient: the same value, but gradients do not flow back through it.
    ///
    /// `d/dx detach(x) = 0`.
    pub fn detach(self) -> Var<'t, T> {
        self.tape.record(Detach, &[self])
    }
}

/// The op behind [`Var::detach`]: identity forward, no backward.
#[derive(Debug, Clone, Copy)]
struct Detach;

impl<T: Float> Op<T> for Detach {
    fn name(&self) -> &'static str {
        "detach"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        crate::op::expect_arity("detach", inputs, 1)?;
        Ok(inputs[0])
    }
    fn forward(&self, inputs: &[&Tensor<T>], output: &mut Tensor<T>) {
        output.as_mut_slice().copy_from_slice(inputs[0].as_slice());
    }
    fn backward(
        &self,
        _: &[&Tensor<T>],
        _: &Tensor<T>,
        _: &Tensor<T>,
        _: &mut [Option<&mut Tensor<T>>],
    ) {
    }
    fn differentiable(&self) -> bool {
        false
    }
}

/// What a node is: a leaf fed in from outside, or the output of an op.
enum NodeKind<T: Float> {
    /// A leaf that wants a gradient (a parameter, or an input being gradient-checked).
    Variable,
    /// A leaf that does not (data, noise, targets).
    Constant,
    /// The output of an op.
    Op(Box<dyn Op<T>>),
}

struct Node<T: Float> {
    kind: NodeKind<T>,
    inputs: SmallVec<[usize; 3]>,
    value: Tensor<T>,
    requires_grad: bool,
    label: Option<String>,
}

/// Recycled buffers, keyed by length, so a steady training loop stops allocating.
struct BufferPool<T: Float> {
    free: HashMap<usize, Vec<Vec<T>>>,
}

impl<T: Float> BufferPool<T> {
    fn zeros(&mut self, shape: Shape) -> Tensor<T> {
        Tensor::from_buffer_zeroed(self.take(shape.len()), shape)
    }

    /// A tensor of `shape` whose values are unspecified (a recycled buffer's old ones):
    /// for a buffer its user overwrites entirely.
    /// Debug builds fill it with NaN, so an op that reads it before writing every value
    /// (against the `Op` contract) shows up as NaN in the tests.
    fn unspecified(&mut self, shape: Shape) -> Tensor<T> {
        #[allow(unused_mut)] // written only in debug builds
        let mut tensor = Tensor::from_buffer_unspecified(self.take(shape.len()), shape);
        #[cfg(debug_assertions)]
        tensor.as_mut_slice().fill(T::from_f64(f64::NAN));
        tensor
    }

    /// A copy of `value` in a pooled buffer (no zeroing: every element is written).
    fn copy_of(&mut self, value: &Tensor<T>) -> Tensor<T> {
        Tensor::from_buffer_copied(self.take(value.len()), value.shape(), value.as_slice())
    }

    /// A free buffer that held `len` elements, or a new empty one.
    fn take(&mut self, len: usize) -> Vec<T> {
        self.free
            .get_mut(&len)
            .and_then(Vec::pop)
            .unwrap_or_default()
    }

    fn give_back(&mut self, tensor: Tensor<T>) {
        let buffer = tensor.into_vec();
        if buffer.capacity() > 0 {
            self.free.entry(buffer.len()).or_default().push(buffer);
        }
    }
}

struct TapeInner<T: Float> {
    nodes: Vec<Node<T>>,
    grads: Vec<Option<Tensor<T>>>,
    error: Option<Error>,
    finite_check: bool,
    pool: BufferPool<T>,
}

/// A reverse-mode autodiff tape over elements of type `T` (`f32` or `f64`).
///
/// See the [module documentation](self) for how it works.
pub struct Tape<T: Float> {
    inner: RefCell<TapeInner<T>>,
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> fmt::Debug for Tape<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tape<{}> with {} nodes", T::NAME, self.len())
    }
}

impl<T: Float> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Tape {
            inner: RefCell::new(TapeInner {
                nodes: Vec::new(),
                grads: Vec::new(),
                error: None,
                finite_check: false,
                pool: BufferPool {
                    free: HashMap::new(),
                },
            }),
        }
    }

    /// Turns the finite check on or off. When on, every op's output (and every
    /// gradient in `backward`) is scanned, and the first NaN or infinity becomes an
    /// [`Error::NonFinite`] naming the op that produced it.
    pub fn set_finite_check(&self, on: bool) {
        self.inner.borrow_mut().finite_check = on;
    }

    /// Number of nodes recorded.
    pub fn len(&self) -> usize {
        self.inner.borrow().nodes.len()
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first error met while recording, if any.
    pub fn error(&self) -> Option<Error> {
        self.inner.borrow().error.clone()
    }

    /// `Err` with the first error met while recording, `Ok` if there was none.
    pub fn check(&self) -> Result<()> {
        match self.error() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Empties the tape for the next step, keeping its buffers for reuse.
    pub fn clear(&mut self) {
        let inner = self.inner.get_mut();
        for node in inner.nodes.drain(..) {
            inner.pool.give_back(node.value);
        }
        for grad in inner.grads.drain(..).flatten() {
            inner.pool.give_back(grad);
        }
        inner.error = None;
    }

    /// Feeds in a tensor that wants a gradient (a parameter, or a gradcheck input).
    /// Non-finite elements are an error ([`Error::NonFiniteInput`]).
    pub fn variable(&self, value: &Tensor<T>) -> Var<'_, T> {
        self.leaf(value, true, None)
    }

    /// Like [`Tape::variable`], with a name shown in dumps and graphs.
    pub fn variable_named(&self, name: &str, value: &Tensor<T>) -> Var<'_, T> {
        self.leaf(value, true, Some(name))
    }

    /// Like [`Tape::variable_named`], but *moves* `value` onto the tape instead of
    /// copying it: `value` is left holding a buffer of the same shape whose contents are
    /// unspecified, until [`Var::swap_value`] gives the value back. For training loops,
    /// which feed every parameter each step (1.17 M values for the paper's VAE). If the
    /// tape is poisoned, or `value` is not finite (an [`Error::NonFiniteInput`]), nothing
    /// is moved.
    pub fn variable_moved(&self, name: &str, value: &mut Tensor<T>) -> Var<'_, T> {
        self.variable_moved_with(name, value, true)
    }

    /// [`Tape::variable_moved`] for a value its caller knows to be finite (a parameter
    /// the optimiser has just checked while updating it), which is not read again to
    /// check it.
    pub(crate) fn variable_moved_known_finite(
        &self,
        name: &str,
        value: &mut Tensor<T>,
    ) -> Var<'_, T> {
        self.variable_moved_with(name, value, false)
    }

    fn variable_moved_with(&self, name: &str, value: &mut Tensor<T>, check: bool) -> Var<'_, T> {
        let mut value = value;
        self.leaf_with(&mut value, true, Some(name), check, |pool, value| {
            let placeholder =
                Tensor::from_buffer_unspecified(pool.take(value.len()), value.shape());
            std::mem::replace(&mut **value, placeholder)
        })
    }

    /// Feeds in a tensor that needs no gradient (data, targets, noise).
    pub fn constant(&self, value: &Tensor<T>) -> Var<'_, T> {
        self.leaf(value, false, None)
    }

    /// Like [`Tape::constant`], with a name shown in dumps and graphs.
    pub fn constant_named(&self, name: &str, value: &Tensor<T>) -> Var<'_, T> {
        self.leaf(value, false, Some(name))
    }

    /// A 1x1 constant.
    pub fn scalar(&self, value: T) -> Var<'_, T> {
        self.leaf(&Tensor::scalar(value), false, None)
    }

    fn leaf(&self, value: &Tensor<T>, requires_grad: bool, label: Option<&str>) -> Var<'_, T> {
        self.leaf_copied(value, requires_grad, label, true)
    }

    /// [`Tape::variable_named`] for a value its caller knows to be finite (a parameter
    /// the optimiser has just checked while updating it), which is copied without being
    /// checked again.
    pub(crate) fn variable_named_known_finite(&self, name: &str, value: &Tensor<T>) -> Var<'_, T> {
        self.leaf_copied(value, true, Some(name), false)
    }

    /// A leaf holding a copy of `value`, checked first unless `check` is false.
    fn leaf_copied(
        &self,
        value: &Tensor<T>,
        requires_grad: bool,
        label: Option<&str>,
        check: bool,
    ) -> Var<'_, T> {
        let mut value = value;
        self.leaf_with(&mut value, requires_grad, label, check, |pool, value| {
            pool.copy_of(value)
        })
    }

    /// Checks `value` (unless `check` is false) and pushes a leaf node whose value
    /// `take(pool, value)` makes (a copy, or the value itself moved out).
    fn leaf_with<V: std::ops::Deref<Target = Tensor<T>>>(
        &self,
        value: &mut V,
        requires_grad: bool,
        label: Option<&str>,
        check: bool,
        take: impl FnOnce(&mut BufferPool<T>, &mut V) -> Tensor<T>,
    ) -> Var<'_, T> {
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        if inner.error.is_some() {
            return self.poisoned();
        }
        let index = inner.nodes.len();
        if check && !value.all_finite() {
            // Only now name the input: the common, finite case formats nothing.
            let what = match label {
                Some(name) => format!("tape input %{index} ({name})"),
                None => format!("tape input %{index}"),
            };
            inner.error = value.check_finite(&what).err();
            return self.poisoned();
        }
        let stored = take(&mut inner.pool, value);
        inner.nodes.push(Node {
            kind: if requires_grad {
                NodeKind::Variable
            } else {
                NodeKind::Constant
            },
            inputs: SmallVec::new(),
            value: stored,
            requires_grad,
            label: label.map(str::to_string),
        });
        Var { tape: self, index }
    }

    fn poisoned(&self) -> Var<'_, T> {
        Var {
            tape: self,
            index: POISONED,
        }
    }

    /// Records `op` applied to `inputs` and runs its forward pass.
    ///
    /// This is how every built-in op is recorded, and how you record your own:
    /// implement [`Op`] and call `tape.record(MyOp, &[x, y])`. If an input is poisoned
    /// or the op rejects the shapes, the error is stored (see the module docs) and a
    /// poisoned `Var` is returned.
    pub fn record<'t>(&'t self, op: impl Op<T>, inputs: &[Var<'t, T>]) -> Var<'t, T> {
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        if inner.error.is_some() || inputs.iter().any(Var::is_poisoned) {
            return self.poisoned();
        }
        if inputs.iter().any(|v| !std::ptr::eq(v.tape, self)) {
            inner.error = Some(Error::ForeignVar {
                op: op.name().to_string(),
            });
            return self.poisoned();
        }
        let shapes: SmallVec<[Shape; 3]> = inputs
            .iter()
            .map(|v| inner.nodes[v.index].value.shape())
            .collect();
        let shape = match op.output_shape(&shapes) {
            Ok(shape) => shape,
            Err(error) => {
                inner.error = Some(error);
                return self.poisoned();
            }
        };
        // Every op's forward pass overwrites all of its output (the `Op` contract), so
        // the recycled buffer is not zeroed first.
        let mut output = inner.pool.unspecified(shape);
        {
            let values: SmallVec<[&Tensor<T>; 3]> =
                inputs.iter().map(|v| &inner.nodes[v.index].value).collect();
            op.forward(&values, &mut output);
        }
        let index = inner.nodes.len();
        if inner.finite_check && !output.all_finite() {
            inner.error = Some(Error::NonFinite {
                op: op.name().to_string(),
                node: index,
                pass: "forward",
            });
            inner.pool.give_back(output);
            return self.poisoned();
        }
        let requires_grad =
            op.differentiable() && inputs.iter().any(|v| inner.nodes[v.index].requires_grad);
        inner.nodes.push(Node {
            kind: NodeKind::Op(Box::new(op)),
            inputs: inputs.iter().map(|v| v.index).collect(),
            value: output,
            requires_grad,
            label: None,
        });
        Var { tape: self, index }
    }

    /// Reverse pass: computes d loss / d node for every node that requires a gradient.
    ///
    /// `loss` must be 1x1. Gradients from an earlier call are discarded first. Read the
    /// results with [`Var::grad`].
    pub fn backward(&self, loss: Var<'_, T>) -> Result<()> {
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        if let Some(error) = &inner.error {
            return Err(error.clone());
        }
        if !std::ptr::eq(loss.tape, self) {
            return Err(Error::ForeignVar {
                op: "backward".to_string(),
            });
        }
        let TapeInner {
            nodes,
            grads,
            pool,
            finite_check,
            ..
        } = inner;
        let loss_shape = nodes[loss.index].value.shape();
        if loss_shape != Shape::SCALAR {
            return Err(Error::NotScalar { shape: loss_shape });
        }
        for grad in grads.drain(..).flatten() {
            pool.give_back(grad);
        }
        grads.resize_with(nodes.len(), || None);
        if !nodes[loss.index].requires_grad {
            return Ok(());
        }
        let mut seed = pool.zeros(Shape::SCALAR);
        seed.as_mut_slice()[0] = T::ONE;
        grads[loss.index] = Some(seed);

        for index in (0..=loss.index).rev() {
            let node = &nodes[index];
            let NodeKind::Op(op) = &node.kind else {
                continue;
            };
            if !node.requires_grad {
                continue;
            }
            let Some(grad_output) = grads[index].take() else {
                continue;
            };
            // Gather one gradient buffer per input position. The first position that
            // names an input gets that input's running sum (the op adds into it); a
            // repeated input (as in x * x) gets a scratch buffer added in afterwards.
            // A buffer with no gradient in it yet is *fresh*: its values are
            // unspecified, and the op writes it rather than adding (`Op::backward_with_fresh`).
            let mut slots: SmallVec<[Option<Tensor<T>>; 3]> = SmallVec::new();
            let mut fresh: SmallVec<[bool; 3]> = SmallVec::new();
            for (position, &input) in node.inputs.iter().enumerate() {
                let (slot, is_fresh) = if !nodes[input].requires_grad {
                    (None, false)
                } else {
                    let repeated = node.inputs[..position].contains(&input);
                    let running_sum = if repeated { None } else { grads[input].take() };
                    let is_fresh = running_sum.is_none();
                    let shape = nodes[input].value.shape();
                    let buffer = running_sum.unwrap_or_else(|| pool.unspecified(shape));
                    (Some(buffer), is_fresh)
                };
                slots.push(slot);
                fresh.push(is_fresh);
            }
            {
                let values: SmallVec<[&Tensor<T>; 3]> =
                    node.inputs.iter().map(|&i| &nodes[i].value).collect();
                let mut slot_refs: SmallVec<[Option<&mut Tensor<T>>; 3]> =
                    slots.iter_mut().map(Option::as_mut).collect();
                op.backward_with_fresh(&values, &node.value, &grad_output, &mut slot_refs, &fresh);
            }
            for (position, &input) in node.inputs.iter().enumerate() {
                let Some(buffer) = slots[position].take() else {
                    continue;
                };
                if *finite_check && !buffer.all_finite() {
                    return Err(Error::NonFinite {
                        op: op.name().to_string(),
                        node: index,
                        pass: "backward",
                    });
                }
                match &mut grads[input] {
                    Some(total) => {
                        for (t, b) in total.as_mut_slice().iter_mut().zip(buffer.as_slice()) {
                            *t += *b;
                        }
                        pool.give_back(buffer);
                    }
                    empty => *empty = Some(buffer),
                }
            }
            grads[index] = Some(grad_output);
        }
        Ok(())
    }

    /// A readable listing of the tape, one line per node: id, op, inputs, shape, and
    /// whether a gradient flows through it.
    ///
    /// ```text
    /// %0 = variable w                [3, 2]  grad
    /// %1 = constant x                [4, 3]
    /// %2 = matmul(%1, %0)            [4, 2]  grad
    /// %3 = relu(%2)                  [4, 2]  grad
    /// ```
    pub fn dump(&self) -> String {
        let inner = self.inner.borrow();
        let mut text = String::new();
        for (index, node) in inner.nodes.iter().enumerate() {
            let head = node_title(node);
            let mut line = format!("%{index} = {head}");
            if !node.inputs.is_empty() {
                let args: Vec<String> = node.inputs.iter().map(|i| format!("%{i}")).collect();
                let _ = write!(line, "({})", args.join(", "));
            }
            let flag = match &node.kind {
                NodeKind::Op(op) if !op.differentiable() => "  not differentiable",
                _ if node.requires_grad => "  grad",
                _ => "",
            };
            let _ = writeln!(text, "{line:<40} {}{flag}", node.value.shape());
        }
        text
    }

    /// The graph in Graphviz DOT format (`dot -Tpng graph.dot -o graph.png`).
    pub fn to_dot(&self) -> String {
        let inner = self.inner.borrow();
        let mut text =
            String::from("digraph tape {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n");
        for (index, node) in inner.nodes.iter().enumerate() {
            let shape = match node.kind {
                NodeKind::Op(_) => "box",
                _ => "ellipse",
            };
            let style = if node.requires_grad {
                "solid"
            } else {
                "dashed"
            };
            let _ = writeln!(
                text,
                "  n{index} [shape={shape}, style={style}, label=\"%{index} {}\\n{}\"];",
                node_title(node).replace('"', "'"),
                node.value.shape()
            );
            for input in &node.inputs {
                let _ = writeln!(text, "  n{input} -> n{index};");
            }
        }
        text.push_str("}\n");
        text
    }
}

fn node_title<T: Float>(node: &Node<T>) -> String {
    let label = node
        .label
        .as_deref()
        .map(|l| format!(" {l}"))
        .unwrap_or_default();
    match &node.kind {
        NodeKind::Variable => format!("variable{label}"),
        NodeKind::Constant => format!("constant{label}"),
        NodeKind::Op(op) => op.describe(),
    }
}
