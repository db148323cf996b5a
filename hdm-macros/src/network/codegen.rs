//! Codegen: the plan as Rust tokens. No analysis happens here; every decision was made by the
//! earlier phases.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use syn::Ident;

use super::ast::{self, Act, FieldKind, PoolKind};
use super::check::{LayerKind, Loss};
use super::ir::{Graph, NodeOp};
use super::path::{Capability, PStep, PathPlan};
use super::plan::{Bwd, Fwd, Mat, Plan, When};
use super::shape::{ConvGeom, PoolGeom, Shape};

fn lit(n: usize) -> Literal {
    Literal::usize_unsuffixed(n)
}

/// The struct as the user wrote it, with hdm's types in its fields and the element type `T`.
pub fn model_struct(net: &ast::Network) -> TokenStream {
    model_struct_with(net, quote!())
}

fn model_struct_with(net: &ast::Network, extra: TokenStream) -> TokenStream {
    let item = &net.item;
    let (vis, name) = (&item.vis, &item.ident);
    let attrs = &item.attrs;
    let mut derives = Vec::new();
    for d in ["Clone", "Debug", "PartialEq"] {
        if !derives_already(attrs, d) {
            derives.push(format_ident!("{}", d));
        }
    }
    let fields = net.fields.iter().map(|f| {
        let (fattrs, fvis) = (&f.attrs, &f.vis);
        let fname = &f.name;
        let ty = field_type(f.kind.as_ref());
        quote! { #(#fattrs)* #fvis #fname: #ty }
    });
    quote! {
        #(#attrs)*
        #[derive(#(#derives),*)]
        #vis struct #name<T: ::hdm::Float = f32> {
            #(#fields,)*
            #extra
        }
    }
}

fn derives_already(attrs: &[syn::Attribute], what: &str) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("derive") && {
            let mut found = false;
            let _ = a.parse_nested_meta(|m| {
                // `Debug`, `std::fmt::Debug`, `::core::fmt::Debug`...
                found |= m.path.segments.last().is_some_and(|s| s.ident == what);
                Ok(())
            });
            found
        }
    })
}

fn bias_mode(bias: bool) -> TokenStream {
    if bias {
        quote!(::hdm::Bias)
    } else {
        quote!(::hdm::NoBias)
    }
}

fn field_type(kind: Option<&FieldKind>) -> TokenStream {
    match kind {
        Some(FieldKind::Linear(l)) => {
            let (i, o) = (lit(l.inputs.value), lit(l.outputs.value));
            if l.bias {
                quote!(::hdm::Linear<T, #i, #o>)
            } else {
                quote!(::hdm::Linear<T, #i, #o, ::hdm::NoBias>)
            }
        }
        Some(FieldKind::Conv(c)) => {
            let (i, o, k, s, p) = (
                lit(c.inputs.value),
                lit(c.outputs.value),
                lit(c.kernel.value),
                lit(c.stride.value),
                lit(c.padding.value),
            );
            let b = bias_mode(c.bias);
            if c.transposed {
                let op = lit(c.output_padding.value);
                quote!(::hdm::ConvTranspose2d<T, #i, #o, #k, #s, #p, #op, #b>)
            } else {
                quote!(::hdm::Conv2d<T, #i, #o, #k, #s, #p, #b>)
            }
        }
        Some(FieldKind::BatchNorm(b)) => {
            let f = lit(b.features.value);
            if b.dims == 1 {
                quote!(::hdm::BatchNorm1d<T, #f>)
            } else {
                quote!(::hdm::BatchNorm2d<T, #f>)
            }
        }
        Some(FieldKind::Pool(p)) => {
            let (k, s) = (lit(p.kernel.value), lit(p.stride.value));
            match p.kind {
                PoolKind::Max => quote!(::hdm::MaxPool2d<#k, #s>),
                PoolKind::Avg => quote!(::hdm::AvgPool2d<#k, #s>),
            }
        }
        Some(FieldKind::Flatten) => quote!(::hdm::Flatten),
        Some(FieldKind::Reshape([c, h, w])) => {
            let (c, h, w) = (lit(c.value), lit(h.value), lit(w.value));
            quote!(::hdm::Reshape<#c, #h, #w>)
        }
        Some(FieldKind::Act(a)) => act_type(*a),
        None => quote!(::core::marker::PhantomData<T>),
    }
}

/// A field's value in a new network: `init` draws the parameters from `rng`, `zeros` makes them 0.
fn field_value(kind: Option<&FieldKind>, init: bool) -> TokenStream {
    let make = if init { quote!(try_init(&mut rng)) } else { quote!(try_zeros()) };
    match kind {
        Some(FieldKind::Linear(_)) => quote!(::hdm::Linear::#make),
        Some(FieldKind::Conv(c)) if c.transposed => quote!(::hdm::ConvTranspose2d::#make),
        Some(FieldKind::Conv(_)) => quote!(::hdm::Conv2d::#make),
        Some(FieldKind::BatchNorm(_)) => quote!(::hdm::BatchNorm::#make),
        Some(FieldKind::Pool(p)) if p.kind == PoolKind::Max => quote!(::hdm::MaxPool2d),
        Some(FieldKind::Pool(_)) => quote!(::hdm::AvgPool2d),
        Some(FieldKind::Flatten) => quote!(::hdm::Flatten),
        Some(FieldKind::Reshape(_)) => quote!(::hdm::Reshape),
        Some(FieldKind::Act(a)) => act_value(*a),
        None => quote!(::core::marker::PhantomData),
    }
}

fn act_type(a: Act) -> TokenStream {
    match a {
        Act::Relu => quote!(::hdm::Relu),
        Act::LeakyRelu(_) => quote!(::hdm::LeakyRelu),
        Act::Sigmoid => quote!(::hdm::Sigmoid),
        Act::Tanh => quote!(::hdm::Tanh),
        Act::Softplus => quote!(::hdm::Softplus),
        Act::Gelu => quote!(::hdm::Gelu),
        Act::Identity => quote!(::hdm::Identity),
    }
}

/// The activation as a value (`::hdm::LeakyRelu::new(0.2)`).
fn act_value(a: Act) -> TokenStream {
    match a {
        Act::LeakyRelu(s) => {
            let s = Literal::f64_unsuffixed(s);
            quote!(::hdm::LeakyRelu::new(#s))
        }
        other => act_type(other),
    }
}

fn target_type(loss: Option<Loss>) -> TokenStream {
    match loss {
        Some(Loss::SoftmaxCrossEntropy) | None => quote!(::hdm::ndarray::ArrayView1<'a, usize>),
        Some(Loss::None) => quote!(::hdm::network::NoTarget),
        Some(_) => quote!(::hdm::ndarray::ArrayView2<'a, T>),
    }
}

/// `[1, 28, 28]` or `[784]`.
fn shape_dims(s: Shape) -> TokenStream {
    match s {
        Shape::Flat(f) => {
            let f = lit(f);
            quote!(&[#f])
        }
        Shape::Image { c, h, w } => {
            let (c, h, w) = (lit(c), lit(h), lit(w));
            quote!(&[#c, #h, #w])
        }
    }
}

/// The runtime's description of a convolution: the plain convolution a `Conv2d` computes, or the
/// one a `ConvTranspose2d` transposes.
fn conv_geometry(g: &ConvGeom) -> TokenStream {
    let (c, h, w) = (lit(g.in_c), lit(g.in_h), lit(g.in_w));
    let (o, k, s, p) = (lit(g.out_c), lit(g.kernel), lit(g.stride), lit(g.padding));
    if g.transposed {
        let op = lit(g.output_padding);
        quote!(::hdm::conv::Conv2dGeometry::transposed([#c, #h, #w], #o, #k, #s, #p, #op))
    } else {
        quote!(::hdm::conv::Conv2dGeometry::new([#c, #h, #w], #o, #k, #s, #p))
    }
}

fn pool_geometry(g: &PoolGeom) -> TokenStream {
    let (c, h, w, k, s) = (lit(g.c), lit(g.in_h), lit(g.in_w), lit(g.kernel), lit(g.stride));
    quote!(::hdm::pooling::Pool2dGeometry::new([#c, #h, #w], #k, #s))
}

/// Everything `#[network]` emits for a network that passed its checks.
pub fn generate(net: &ast::Network, g: &Graph, plan: &Plan, path: &PathPlan) -> TokenStream {
    let name = &net.item.ident;
    let vis = &net.item.vis;
    let model = model_struct(net);
    // Reserved-looking, so that it cannot meet a user's `NetBuffers`.
    let buffers_name = format_ident!("__{}Buffers", name);
    let name_str = name.to_string();
    let structure = &net.structure;

    // Buffers.
    let buf_fields: Vec<Ident> = plan.buffers.iter().map(|b| format_ident!("{}", b.name)).collect();
    let buf_inits = plan.buffers.iter().zip(&buf_fields).map(|(b, f)| {
        let w = lit(b.shape.width());
        let rows = if b.grad { quote!(grad_rows) } else { quote!(max_batch) };
        quote!(#f: ::hdm::__private::zeroed(#name_str, #rows, #w)?)
    });
    let stat_fields: Vec<Ident> = plan.stats.iter().map(|s| format_ident!("{}", s.name)).collect();
    let stat_inits = plan.stats.iter().zip(&stat_fields).map(|(s, f)| {
        let channels = lit(s.channels);
        quote!(#f: ::std::vec![T::zero(); ::hdm::norm::STATS_PER_CHANNEL * #channels])
    });
    let (path_fields, path_inits, capability, path_scales) = path_code(g, path);
    let buffers_doc = format!("Activation and gradient buffers of [`{name}`], sized for a largest batch.");

    // Construction.
    // Layers with parameters allocate fallibly; an error names the network and the field.
    let construct = |init: bool| -> Vec<TokenStream> {
        net.fields
            .iter()
            .map(|f| {
                let (fname, v) = (&f.name, field_value(f.kind.as_ref(), init));
                if f.kind.as_ref().is_some_and(FieldKind::has_parameters) {
                    let field = fname.to_string();
                    quote!(#fname: #v.map_err(|e| ::hdm::__private::in_layer(#name_str, #field, e))?)
                } else {
                    quote!(#fname: #v)
                }
            })
            .collect()
    };
    let (inits, zeros) = (construct(true), construct(false));

    let cg = Gen { g, plan, bufs: &buf_fields, stats: &stat_fields };
    let forward = plan.forward.iter().map(|s| cg.forward_step(s));
    let backward = plan.backward.iter().map(|(when, s)| {
        let step = cg.backward_step(s);
        match when {
            When::Always => step,
            When::InputGrad => quote!(if input_grad { #step }),
        }
    });
    let output_grad = cg.buf_mut(plan.output_grad);
    let input_grad = cg.buf_ref(plan.input_grad);
    let output = cg.mat_ref(plan.output);
    let loss = cg.loss();
    let out_w = lit(g.values[g.output].width());
    let check_target = match plan.loss {
        Loss::SoftmaxCrossEntropy => quote!(::hdm::network::check_labels(target, batch, #out_w)),
        Loss::None => quote!(match *target {}),
        _ => quote!(::hdm::network::check_targets(target, batch, #out_w)),
    };
    let target_ty = target_type(Some(plan.loss));
    let running = cg.running_stats();

    // Tensor access, in Parameters order.
    let mut tensor_arms = Vec::new();
    let mut tensor_mut_arms = Vec::new();
    for l in &g.layers {
        let f = &l.layer.field;
        let w = lit(l.weight_tensor);
        tensor_arms.push(quote!(#w => self.#f.weight_slice()));
        tensor_mut_arms.push(quote!(#w => self.#f.weight_slice_mut()));
        if let Some(b) = l.bias_tensor {
            let b = lit(b);
            tensor_arms.push(quote!(#b => self.#f.bias_slice()));
            tensor_mut_arms.push(quote!(#b => self.#f.bias_slice_mut()));
        }
    }
    let layer_fields: Vec<&Ident> = g.layers.iter().map(|l| &l.layer.field).collect();
    // PyTorch's names: `final.weight` for a field `r#final`.
    let layer_prefixes: Vec<String> =
        layer_fields.iter().map(|f| format!("{}.", syn::ext::IdentExt::unraw(*f))).collect();
    let (input_w, tensors) = (lit(g.values[0].width()), lit(g.tensors));
    let (input_shape, output_shape) = (shape_dims(g.values[0].shape), shape_dims(g.values[g.output].shape));
    let scratch = cg.scratch();
    let ready_order = plan.ready_order(g).into_iter().map(lit);
    let n_stats = lit(stat_fields.len());
    let stat_arms = stat_fields.iter().enumerate().map(|(i, f)| {
        let i = lit(i);
        quote!(#i => &mut b.#f)
    });
    // Batch statistics need more than one value per channel (PyTorch raises the same error).
    let min_train_batch =
        lit(if g.nodes.iter().any(|n| matches!(n.op, NodeOp::BatchNorm { spatial: 1, .. })) { 2 } else { 1 });

    quote! {
        #model

        #[doc = #buffers_doc]
        #[doc(hidden)]
        #vis struct #buffers_name<T> {
            #(#buf_fields: ::hdm::__private::AlignedVec<T>,)*
            #(#stat_fields: ::std::vec::Vec<T>,)*
            #path_fields
        }

        impl<T: ::hdm::Float> ::hdm::Parameters<T> for #name<T> {
            fn params_with_prefix(&self, prefix: &str) -> ::std::vec::Vec<::hdm::Param<'_, T>> {
                let mut params = ::std::vec::Vec::new();
                #(params.extend(self.#layer_fields.params_with_prefix(&::std::format!("{}{}", prefix, #layer_prefixes)));)*
                params
            }
            fn params_mut_with_prefix(&mut self, prefix: &str) -> ::std::vec::Vec<::hdm::ParamMut<'_, T>> {
                let mut params = ::std::vec::Vec::new();
                #(params.extend(self.#layer_fields.params_mut_with_prefix(&::std::format!("{}{}", prefix, #layer_prefixes)));)*
                params
            }
            fn buffers_with_prefix(&self, prefix: &str) -> ::std::vec::Vec<::hdm::Param<'_, T>> {
                let mut buffers = ::std::vec::Vec::new();
                #(buffers.extend(self.#layer_fields.buffers_with_prefix(&::std::format!("{}{}", prefix, #layer_prefixes)));)*
                buffers
            }
            fn state_mut_with_prefix(&mut self, prefix: &str) -> ::std::vec::Vec<::hdm::ParamMut<'_, T>> {
                let mut state = ::std::vec::Vec::new();
                #(state.extend(self.#layer_fields.state_mut_with_prefix(&::std::format!("{}{}", prefix, #layer_prefixes)));)*
                state
            }
            fn counters_with_prefix(&self, prefix: &str) -> ::std::vec::Vec<(::std::string::String, u64)> {
                let mut counters = ::std::vec::Vec::new();
                #(counters.extend(self.#layer_fields.counters_with_prefix(&::std::format!("{}{}", prefix, #layer_prefixes)));)*
                counters
            }
            fn counters_mut_with_prefix(&mut self, prefix: &str) -> ::std::vec::Vec<(::std::string::String, &mut u64)> {
                let mut counters = ::std::vec::Vec::new();
                #(counters.extend(self.#layer_fields.counters_mut_with_prefix(&::std::format!("{}{}", prefix, #layer_prefixes)));)*
                counters
            }
        }

        impl<T: ::hdm::Float> ::hdm::Network<T> for #name<T> {
            const NAME: &'static str = #name_str;
            const STRUCTURE: &'static str = #structure;
            const INPUT: usize = #input_w;
            const OUTPUT: usize = #out_w;
            const INPUT_SHAPE: &'static [usize] = #input_shape;
            const OUTPUT_SHAPE: &'static [usize] = #output_shape;
            const TENSORS: usize = #tensors;
            const SCRATCH: usize = #scratch;
            const MIN_TRAIN_BATCH: usize = #min_train_batch;
            const READY_ORDER: &'static [usize] = &[#(#ready_order),*];
            const BATCH_STATS: usize = #n_stats;
            type Target<'a> = #target_ty;
            type Buffers = #buffers_name<T>;
            type PathCapability = #capability;

            fn try_init(seed: u64) -> ::hdm::Result<Self> {
                let mut rng = ::hdm::Rng::new(seed);
                ::core::result::Result::Ok(#name { #(#inits,)* })
            }

            fn try_zeros() -> ::hdm::Result<Self> {
                ::core::result::Result::Ok(#name { #(#zeros,)* })
            }

            fn __buffers(max_batch: usize, with_grad: bool) -> ::hdm::Result<#buffers_name<T>> {
                let grad_rows = if with_grad { max_batch } else { 0 };
                ::core::result::Result::Ok(#buffers_name { #(#buf_inits,)* #(#stat_inits,)* #path_inits })
            }

            fn __check_target(target: &Self::Target<'_>, batch: usize) -> ::hdm::Result<()> {
                #check_target
            }

            #[allow(unused_variables)]
            fn __forward(
                &self,
                b: &mut #buffers_name<T>,
                x: ::hdm::gemm::MatRef<'_, T>,
                n: usize,
                pool: &::hdm::gemm::Pool<T>,
                train: bool,
            ) {
                use ::hdm::gemm::{MatMut, MatRef};
                use ::hdm::kernels::*;
                #(#forward)*
            }

            #[allow(unused_variables)]
            fn __update_running_stats(&mut self, b: &#buffers_name<T>, n: usize) {
                #running
            }

            fn __output(b: &#buffers_name<T>, n: usize) -> ::hdm::gemm::MatRef<'_, T> {
                use ::hdm::gemm::MatRef;
                #output
            }

            #[allow(unused_imports, unused_variables)]
            fn __loss(b: &mut #buffers_name<T>, target: Self::Target<'_>, n: usize, with_grad: bool) -> T {
                use ::hdm::gemm::{MatMut, MatRef};
                #loss
            }

            #[allow(unused_variables)]
            fn __backward<H: ::hdm::network::BackwardHook<T, Self>>(
                hook: &mut H,
                grads: &mut Self,
                b: &mut #buffers_name<T>,
                x: ::hdm::gemm::MatRef<'_, T>,
                n: usize,
                pool: &::hdm::gemm::Pool<T>,
                pass: ::hdm::network::BackwardPass,
            ) {
                use ::hdm::gemm::{MatMut, MatRef};
                use ::hdm::kernels::*;
                let ::hdm::network::BackwardPass { accumulate, input_grad, params } = pass;
                #(#backward)*
            }

            fn __output_grad(b: &mut #buffers_name<T>, n: usize) -> ::hdm::gemm::MatMut<'_, T> {
                use ::hdm::gemm::MatMut;
                #output_grad
            }

            fn __input_grad(b: &#buffers_name<T>, n: usize) -> ::hdm::gemm::MatRef<'_, T> {
                use ::hdm::gemm::MatRef;
                #input_grad
            }

            #path_scales

            fn __tensor(&self, i: usize) -> &[T] {
                match i {
                    #(#tensor_arms,)*
                    _ => ::core::panic!("{} has {} parameter tensors", #name_str, #tensors),
                }
            }

            fn __tensor_mut(&mut self, i: usize) -> &mut [T] {
                match i {
                    #(#tensor_mut_arms,)*
                    _ => ::core::panic!("{} has {} parameter tensors", #name_str, #tensors),
                }
            }

            fn __batch_stats(b: &mut #buffers_name<T>, i: usize) -> &mut [T] {
                match i {
                    #(#stat_arms,)*
                    _ => ::core::panic!("{} has {} batch normalisations", #name_str, #n_stats),
                }
            }
        }
    }
}

struct Gen<'a> {
    g: &'a Graph,
    plan: &'a Plan,
    bufs: &'a [Ident],
    stats: &'a [Ident],
}

impl Gen<'_> {
    fn buf_ref(&self, id: usize) -> TokenStream {
        let (f, w) = (&self.bufs[id], lit(self.plan.buffers[id].shape.width()));
        quote!(MatRef::row_major(&b.#f, n, #w))
    }

    fn buf_mut(&self, id: usize) -> TokenStream {
        let (f, w) = (&self.bufs[id], lit(self.plan.buffers[id].shape.width()));
        quote!(MatMut::row_major(&mut b.#f, n, #w))
    }

    fn mat_ref(&self, m: Mat) -> TokenStream {
        match m {
            Mat::Input => quote!(x),
            Mat::Buf(id) => self.buf_ref(id),
        }
    }

    /// The `Option<MatMut>` of a kept pre-activation.
    fn keep(&self, keep_input: Option<usize>) -> TokenStream {
        match keep_input {
            Some(z) => {
                let z = self.buf_mut(z);
                quote!(::core::option::Option::Some(#z))
            }
            None => quote!(::core::option::Option::None),
        }
    }

    /// `W` of a Linear layer, `[out, in]`, read from `owner` (`self` forward, `hook.model()`
    /// backward).
    fn weight(&self, layer: usize, owner: TokenStream) -> TokenStream {
        let l = &self.g.layers[layer].layer;
        let LayerKind::Linear { inputs, outputs, .. } = l.kind else { unreachable!("a Linear layer") };
        let (f, i, o) = (&l.field, lit(inputs), lit(outputs));
        quote!(MatRef::row_major(#owner.#f.weight_slice(), #o, #i))
    }

    /// Elements per channel of a node's output (1 for rows).
    fn positions(&self, node: usize) -> usize {
        match self.g.values[self.g.nodes[node].output].shape {
            Shape::Flat(_) => 1,
            Shape::Image { h, w, .. } => h * w,
        }
    }

    fn forward_step(&self, s: &Fwd) -> TokenStream {
        match s {
            Fwd::Layer { node, x, out, act, keep_input, stats } => {
                let x = self.mat_ref(*x);
                let a = act_value(act.unwrap_or(Act::Identity));
                let keep = self.keep(*keep_input);
                let y = self.buf_mut(*out);
                match self.g.nodes[*node].op {
                    NodeOp::Linear(layer) => {
                        let l = &self.g.layers[layer].layer;
                        let f = &l.field;
                        let w = self.weight(layer, quote!(self));
                        let gemm_out = self.buf_mut(keep_input.unwrap_or(*out));
                        let gemm = quote!(pool.gemm(T::one(), #x, #w.t(), T::zero(), #gemm_out););
                        let bias = if l.has_bias() { quote!(self.#f.bias_slice()) } else { quote!(&[]) };
                        let pass = match (act, keep_input) {
                            (Some(_), Some(z)) => {
                                let z = self.buf_mut(*z);
                                quote!(par::bias_act_keep_input(pool, #z, #y, #bias, #a);)
                            }
                            (Some(_), None) => quote!(par::bias_act(pool, #y, #bias, #a);),
                            (None, _) if l.has_bias() => quote!(par::bias_act(pool, #y, #bias, ::hdm::Identity);),
                            (None, _) => quote!(),
                        };
                        quote!(#gemm #pass)
                    }
                    NodeOp::Conv { layer, geom } => {
                        let f = &self.g.layers[layer].layer.field;
                        let gm = conv_geometry(&geom);
                        let call = if geom.transposed { quote!(transposed_forward) } else { quote!(forward) };
                        quote! {
                            ::hdm::conv::#call(pool, #gm, #x, self.#f.weight_slice(), self.#f.bias_slice(), #a, #y, #keep);
                        }
                    }
                    NodeOp::BatchNorm { layer, spatial } => {
                        let f = &self.g.layers[layer].layer.field;
                        let st = &self.stats[stats.expect("a batch normalisation keeps its statistics")];
                        let positions = lit(spatial);
                        quote! {
                            ::hdm::norm::forward(
                                pool,
                                &self.#f,
                                #positions,
                                #x,
                                &mut b.#st,
                                train,
                                #a,
                                #y,
                                #keep,
                            );
                        }
                    }
                    _ => unreachable!("a layer node"),
                }
            }
            Fwd::Pool { node, x, out } => {
                let NodeOp::Pool(geom) = self.g.nodes[*node].op else { unreachable!("a pooling node") };
                let (gm, x, y) = (pool_geometry(&geom), self.mat_ref(*x), self.buf_mut(*out));
                let call = if geom.max { quote!(max_forward) } else { quote!(avg_forward) };
                quote!(::hdm::pooling::#call(pool, #gm, #x, #y);)
            }
            Fwd::Act { act, x, out } => {
                let (x, y, a) = (self.mat_ref(*x), self.buf_mut(*out), act_value(*act));
                quote!(par::act_forward(pool, #x, #y, #a);)
            }
            Fwd::Add { a, b: rhs, out } => {
                let (a, r, o) = (self.mat_ref(*a), self.mat_ref(*rhs), self.buf_mut(*out));
                quote!(par::add(pool, #a, #r, #o);)
            }
            Fwd::Concat { parts, out } => {
                let copies = parts.iter().map(|(p, offset)| {
                    let width = match p {
                        Mat::Input => self.g.values[0].width(),
                        Mat::Buf(id) => self.plan.buffers[*id].shape.width(),
                    };
                    let (src, dst, off, w) = (self.mat_ref(*p), self.buf_mut(*out), lit(*offset), lit(width));
                    quote!(copy(#src, #dst.cols(#off, #w), false);)
                });
                quote!(#(#copies)*)
            }
        }
    }

    /// The bias gradient of `node`'s layer (a Linear or convolution), summed from `dy`.
    fn bias_sum(&self, node: usize) -> (TokenStream, usize) {
        let layer = self.g.nodes[node].op.layer().expect("a layer node");
        let f = &self.g.layers[layer].layer.field;
        (quote!(grads.#f.bias_slice_mut()), self.positions(node))
    }

    fn backward_step(&self, s: &Bwd) -> TokenStream {
        let beta = |acc: bool| if acc { quote!(T::one()) } else { quote!(T::zero()) };
        // A parameter's first contribution adds to the gradient already there when the pass
        // accumulates (several passes before one update).
        let param_acc = |acc: bool| if acc { quote!(true) } else { quote!(accumulate) };
        let param_beta =
            |acc: bool| if acc { quote!(T::one()) } else { quote!(if accumulate { T::one() } else { T::zero() }) };
        let guarded = |when: When, m: TokenStream| match when {
            When::Always => m,
            When::InputGrad => quote!(if input_grad { #m } else { ::core::option::Option::None }),
        };
        match s {
            Bwd::LayerGrads { node, dy, x, acc, dx, outer } => {
                let (dy, x) = (self.buf_ref(*dy), self.mat_ref(*x));
                match self.g.nodes[*node].op {
                    NodeOp::Linear(layer) => {
                        let l = &self.g.layers[layer].layer;
                        let LayerKind::Linear { inputs, outputs, .. } = l.kind else { unreachable!() };
                        let (f, i, o) = (&l.field, lit(inputs), lit(outputs));
                        let beta_w = param_beta(*acc);
                        let w = self.weight(layer, quote!(hook.model()));
                        let dx = match dx {
                            Some((dx, acc, when)) => {
                                let (dx, beta_x) = (self.buf_mut(*dx), beta(*acc));
                                guarded(*when, quote!(::core::option::Option::Some((#dx, #beta_x))))
                            }
                            None => quote!(::core::option::Option::None),
                        };
                        if !*outer {
                            return quote! {
                                ::hdm::network::linear_grads(
                                    pool,
                                    #dy,
                                    #x,
                                    #w,
                                    if params {
                                        ::core::option::Option::Some((MatMut::row_major(grads.#f.weight_slice_mut(), #o, #i), #beta_w))
                                    } else {
                                        ::core::option::Option::None
                                    },
                                    #dx,
                                );
                            };
                        }
                        // The hook may take the weight's gradient as the product `dy^T x` it is
                        // (to update the weight as the product is made), once the input's
                        // gradient has read the weight.
                        let t = lit(self.g.layers[layer].weight_tensor);
                        quote! {
                            let outer = params && hook.updates_outer(n);
                            ::hdm::network::linear_grads(
                                pool,
                                #dy,
                                #x,
                                #w,
                                if params && !outer {
                                    ::core::option::Option::Some((MatMut::row_major(grads.#f.weight_slice_mut(), #o, #i), #beta_w))
                                } else {
                                    ::core::option::Option::None
                                },
                                #dx,
                            );
                            if outer {
                                hook.ready_outer(#t, #dy, #x, grads.#f.weight_slice_mut());
                            }
                        }
                    }
                    NodeOp::Conv { layer, geom } => {
                        let f = &self.g.layers[layer].layer.field;
                        let gm = conv_geometry(&geom);
                        let dx = match dx {
                            Some((dx, acc, when)) => {
                                let dx = self.buf_mut(*dx);
                                guarded(*when, quote!(::core::option::Option::Some((#dx, #acc))))
                            }
                            None => quote!(::core::option::Option::None),
                        };
                        let acc = param_acc(*acc);
                        let call = if geom.transposed { quote!(transposed_backward) } else { quote!(backward) };
                        quote! {
                            ::hdm::conv::#call(
                                pool,
                                #gm,
                                #dy,
                                #x,
                                hook.model().#f.weight_slice(),
                                if params {
                                    ::core::option::Option::Some(grads.#f.weight_slice_mut())
                                } else {
                                    ::core::option::Option::None
                                },
                                #acc,
                                #dx,
                            );
                        }
                    }
                    _ => unreachable!("a Linear or convolution node"),
                }
            }
            Bwd::BiasGrad { node, dy, acc } => {
                let (dy, acc) = (self.buf_ref(*dy), param_acc(*acc));
                let (db, positions) = self.bias_sum(*node);
                let sums = if positions == 1 {
                    quote!(par::column_sums(pool, #dy, #db, #acc);)
                } else {
                    let p = lit(positions);
                    quote!(par::channel_sums(pool, #dy, #p, #db, #acc);)
                };
                // (A pass that discards the parameters' gradients leaves them as they are.)
                quote!(if params { #sums })
            }
            Bwd::ActInPlace { act, g, y, z, bias } => {
                let (gm, y, z, a) = (self.buf_mut(*g), self.mat_ref(*y), self.mat_ref(*z), act_value(*act));
                match bias {
                    Some((node, acc)) => {
                        let ((db, positions), acc) = (self.bias_sum(*node), param_acc(*acc));
                        let with_bias = if positions == 1 {
                            quote!(par::act_backward_in_place_bias(pool, #gm, #y, #z, #a, #db, #acc);)
                        } else {
                            let p = lit(positions);
                            quote!(par::act_backward_in_place_channel_bias(pool, #gm, #y, #z, #a, #p, #db, #acc);)
                        };
                        quote! {
                            if params {
                                #with_bias
                            } else {
                                par::act_backward_in_place(pool, #gm, #y, #z, #a);
                            }
                        }
                    }
                    None => quote!(par::act_backward_in_place(pool, #gm, #y, #z, #a);),
                }
            }
            Bwd::Act { act, dy, y, z, dx, acc } => {
                let (dy, y, z, a) = (self.buf_ref(*dy), self.mat_ref(*y), self.mat_ref(*z), act_value(*act));
                let dx = self.buf_mut(*dx);
                quote!(act_backward(#dy, #y, #z, #a, #dx, #acc);)
            }
            Bwd::BatchNorm { node, g, act, x, stats, acc, dx } => {
                let NodeOp::BatchNorm { layer, spatial } = self.g.nodes[*node].op else { unreachable!() };
                let f = &self.g.layers[layer].layer.field;
                let st = &self.stats[*stats];
                let (gm, x, positions) = (self.buf_mut(*g), self.mat_ref(*x), lit(spatial));
                let acc = param_acc(*acc);
                let grads = quote! {
                    if params { ::core::option::Option::Some(&mut grads.#f) } else { ::core::option::Option::None }
                };
                let dx = match dx {
                    None => quote!(false),
                    Some(When::Always) => quote!(true),
                    Some(When::InputGrad) => quote!(input_grad),
                };
                match act {
                    Some((a, y, z)) => {
                        let (a, y, z) = (act_value(*a), self.mat_ref(*y), self.mat_ref(*z));
                        quote! {
                            ::hdm::norm::backward_act(
                                pool,
                                &hook.model().#f,
                                #grads,
                                #positions,
                                #gm,
                                ::core::option::Option::Some(#y),
                                ::core::option::Option::Some(#z),
                                #a,
                                #x,
                                &mut b.#st,
                                #acc,
                                #dx,
                            );
                        }
                    }
                    None => quote! {
                        ::hdm::norm::backward(
                            pool,
                            &hook.model().#f,
                            #grads,
                            #positions,
                            #gm,
                            #x,
                            &mut b.#st,
                            #acc,
                            #dx,
                        );
                    },
                }
            }
            Bwd::Pool { node, dy, x, dx, acc } => {
                let NodeOp::Pool(geom) = self.g.nodes[*node].op else { unreachable!("a pooling node") };
                let (gm, dy, x, dx) = (pool_geometry(&geom), self.buf_ref(*dy), self.mat_ref(*x), self.buf_mut(*dx));
                if geom.max {
                    quote!(::hdm::pooling::max_backward(pool, #gm, #dy, #x, #dx, #acc);)
                } else {
                    quote!(::hdm::pooling::avg_backward(pool, #gm, #dy, #dx, #acc);)
                }
            }
            Bwd::Copy { dy, offset, dx, acc } => {
                let w = lit(self.plan.buffers[*dx].shape.width());
                let (src, dst, off) = (self.buf_ref(*dy), self.buf_mut(*dx), lit(*offset));
                if self.plan.buffers[*dy].shape.width() == self.plan.buffers[*dx].shape.width() {
                    quote!(copy(#src, #dst, #acc);)
                } else {
                    quote!(copy(#src.cols(#off, #w), #dst, #acc);)
                }
            }
            Bwd::Ready { layer, outer } => {
                let info = &self.g.layers[*layer];
                let f = &info.layer.field;
                let w = lit(info.weight_tensor);
                let bias = info.bias_tensor.map(|t| {
                    let t = lit(t);
                    quote!(hook.ready(#t, grads.#f.bias_slice());)
                });
                let weight = quote!(hook.ready(#w, grads.#f.weight_slice()););
                let weight = if *outer { quote!(if !hook.updates_outer(n) { #weight }) } else { weight };
                quote!(#weight #bias)
            }
        }
    }

    /// Blends each batch normalisation's batch statistics into its running statistics (after a
    /// training forward pass).
    fn running_stats(&self) -> TokenStream {
        let updates = self.plan.forward.iter().filter_map(|s| match s {
            Fwd::Layer { node, stats: Some(st), .. } => {
                let NodeOp::BatchNorm { layer, spatial } = self.g.nodes[*node].op else { return None };
                let (f, st, positions) = (&self.g.layers[layer].layer.field, &self.stats[*st], lit(spatial));
                Some(quote!(self.#f.update_running_stats(&b.#st, n * #positions);))
            }
            _ => None,
        });
        quote!(#(#updates)*)
    }

    /// Scratch memory each thread needs for the network's convolutions.
    fn scratch(&self) -> TokenStream {
        let lens: Vec<TokenStream> = self
            .g
            .nodes
            .iter()
            .filter_map(|n| match n.op {
                NodeOp::Conv { geom, .. } => {
                    let gm = conv_geometry(&geom);
                    Some(quote!(#gm.scratch_len()))
                }
                _ => None,
            })
            .collect();
        if lens.is_empty() {
            quote!(0)
        } else {
            quote!(::hdm::__private::max_of(&[#(#lens),*]))
        }
    }

    fn loss(&self) -> TokenStream {
        let out = self.mat_ref(self.plan.output);
        let grad = self.buf_mut(self.plan.output_grad);
        let grad = quote!(if with_grad { ::core::option::Option::Some(#grad) } else { ::core::option::Option::None });
        match self.plan.loss {
            Loss::SoftmaxCrossEntropy => quote! {
                ::hdm::kernels::softmax_cross_entropy(#out, |i| target[i], #grad)
            },
            Loss::Mse => {
                let w = lit(self.g.values[self.g.output].width());
                quote! {
                    let scale = T::one() / T::of((n * #w) as f64);
                    ::hdm::kernels::squared_error(#out, MatRef::from(target), scale, #grad)
                }
            }
            Loss::SumOfSquares => quote! {
                ::hdm::kernels::squared_error(#out, MatRef::from(target), T::one(), #grad)
            },
            Loss::BceWithLogits => quote! {
                ::hdm::kernels::bce_with_logits(#out, MatRef::from(target), #grad)
            },
            Loss::None => quote!(match target {}),
        }
    }
}

/// What is emitted beside `compile_error!` when the network has errors: the struct and an
/// implementation of `Network` whose bodies are never run, so that the user's other code still
/// type-checks and the only errors shown are the network's own.
pub fn stub(net: &ast::Network, loss: Option<Loss>) -> TokenStream {
    let name = &net.item.ident;
    // A network whose fields never mention `T` (only activations and pooling, already an error)
    // would leave it unused: one more error that is not the user's.
    let uses_t = net
        .fields
        .iter()
        .any(|f| matches!(f.kind, None | Some(FieldKind::Linear(_) | FieldKind::Conv(_) | FieldKind::BatchNorm(_))));
    let extra = if uses_t { quote!() } else { quote!(#[doc(hidden)] __element: ::core::marker::PhantomData<T>,) };
    let model = model_struct_with(net, extra);
    let name_str = name.to_string();
    let target_ty = target_type(loss);
    quote! {
        #model

        impl<T: ::hdm::Float> ::hdm::Parameters<T> for #name<T> {
            fn params_with_prefix(&self, _: &str) -> ::std::vec::Vec<::hdm::Param<'_, T>> {
                ::core::unreachable!()
            }
            fn params_mut_with_prefix(&mut self, _: &str) -> ::std::vec::Vec<::hdm::ParamMut<'_, T>> {
                ::core::unreachable!()
            }
        }

        impl<T: ::hdm::Float> ::hdm::Network<T> for #name<T> {
            const NAME: &'static str = #name_str;
            const STRUCTURE: &'static str = "";
            const INPUT: usize = 0;
            const OUTPUT: usize = 0;
            const INPUT_SHAPE: &'static [usize] = &[0];
            const OUTPUT_SHAPE: &'static [usize] = &[0];
            const TENSORS: usize = 0;
            const SCRATCH: usize = 0;
            const MIN_TRAIN_BATCH: usize = 1;
            const READY_ORDER: &'static [usize] = &[];
            const BATCH_STATS: usize = 0;
            type Target<'a> = #target_ty;
            type Buffers = ();
            type PathCapability = ::hdm::path::Homogeneous;
            fn try_init(_: u64) -> ::hdm::Result<Self> { ::core::unreachable!() }
            fn try_zeros() -> ::hdm::Result<Self> { ::core::unreachable!() }
            fn __buffers(_: usize, _: bool) -> ::hdm::Result<()> { ::core::unreachable!() }
            fn __check_target(_: &Self::Target<'_>, _: usize) -> ::hdm::Result<()> { ::core::unreachable!() }
            fn __forward(&self, _: &mut (), _: ::hdm::gemm::MatRef<'_, T>, _: usize, _: &::hdm::gemm::Pool<T>, _: bool) {
                ::core::unreachable!()
            }
            fn __update_running_stats(&mut self, _: &(), _: usize) { ::core::unreachable!() }
            fn __output(_: &(), _: usize) -> ::hdm::gemm::MatRef<'_, T> { ::core::unreachable!() }
            fn __loss(_: &mut (), _: Self::Target<'_>, _: usize, _: bool) -> T { ::core::unreachable!() }
            fn __backward<H: ::hdm::network::BackwardHook<T, Self>>(
                _: &mut H, _: &mut Self, _: &mut (), _: ::hdm::gemm::MatRef<'_, T>, _: usize, _: &::hdm::gemm::Pool<T>,
                _: ::hdm::network::BackwardPass,
            ) {
                ::core::unreachable!()
            }
            fn __output_grad(_: &mut (), _: usize) -> ::hdm::gemm::MatMut<'_, T> { ::core::unreachable!() }
            fn __input_grad(_: &(), _: usize) -> ::hdm::gemm::MatRef<'_, T> { ::core::unreachable!() }
            fn __path_scales<S: ::hdm::OptimizerState<T>>(&self, _: &mut (), _: &mut [S], _: &::hdm::gemm::Pool<T>) -> T {
                ::core::unreachable!()
            }
            fn __tensor(&self, _: usize) -> &[T] { ::core::unreachable!() }
            fn __tensor_mut(&mut self, _: usize) -> &mut [T] { ::core::unreachable!() }
            fn __batch_stats(_: &mut (), _: usize) -> &mut [T] { ::core::unreachable!() }
        }
    }
}

/// Path-SGD's buffers, capability and passes (see the `path` module).
fn path_code(g: &Graph, path: &PathPlan) -> (TokenStream, TokenStream, TokenStream, TokenStream) {
    let capability = match path.capability {
        Capability::Homogeneous => quote!(::hdm::path::Homogeneous),
        Capability::NotHomogeneous(a) => {
            let a = act_type(a);
            quote!(::hdm::path::NotHomogeneous<#a>)
        }
        Capability::SharedLayer => quote!(::hdm::path::SharedLayer),
        Capability::BatchNorm => quote!(::hdm::path::BatchNormalized),
    };
    if !matches!(path.capability, Capability::Homogeneous) {
        let body = quote! {
            fn __path_scales<S: ::hdm::OptimizerState<T>>(
                &self,
                _: &mut Self::Buffers,
                _: &mut [S],
                _: &::hdm::gemm::Pool<T>,
            ) -> T {
                ::core::unreachable!("path scales are not defined for this network")
            }
        };
        return (quote!(), quote!(), capability, body);
    }
    let (in_len, out_len) = (lit(path.in_len), lit(path.out_len));
    let fields = quote!(path_in: ::std::vec::Vec<T>, path_out: ::std::vec::Vec<T>,);
    let inits = quote! {
        path_in: ::std::vec![T::zero(); if with_grad { #in_len } else { 0 }],
        path_out: ::std::vec![T::zero(); if with_grad { #out_len } else { 0 }],
    };
    let step = |s: &PStep, forward: bool| match *s {
        PStep::Layer { node, x, y } => match g.nodes[node].op {
            NodeOp::Linear(layer) => {
                let l = &g.layers[layer].layer;
                let LayerKind::Linear { inputs, outputs, .. } = l.kind else { unreachable!() };
                let (f, i, o, x, y) = (&l.field, lit(inputs), lit(outputs), lit(x), lit(y));
                if forward {
                    quote!(::hdm::path::forward(pool, self.#f.weight_slice(), #o, #i, self.#f.bias_slice(), gin, #x, #y);)
                } else {
                    quote!(::hdm::path::backward(pool, self.#f.weight_slice(), #o, #i, gout, #y, #x);)
                }
            }
            NodeOp::Conv { layer, geom } => {
                let f = &g.layers[layer].layer.field;
                let (gm, x, y, t) = (conv_geometry(&geom), lit(x), lit(y), geom.transposed);
                if forward {
                    quote!(::hdm::path::conv_forward(pool, #gm, #t, self.#f.weight_slice(), self.#f.bias_slice(), gin, #x, #y);)
                } else {
                    quote!(::hdm::path::conv_backward(pool, #gm, #t, self.#f.weight_slice(), gout, #y, #x);)
                }
            }
            _ => unreachable!("a Linear or convolution node"),
        },
        PStep::Pool { node, x, y } => {
            let NodeOp::Pool(geom) = g.nodes[node].op else { unreachable!("a pooling node") };
            let (gm, x, y, max) = (pool_geometry(&geom), lit(x), lit(y), geom.max);
            if forward {
                quote!(::hdm::path::pool_forward(#gm, #max, gin, #x, #y);)
            } else {
                quote!(::hdm::path::pool_backward(#gm, #max, gout, #y, #x);)
            }
        }
        PStep::Add { a, b, y, width } => {
            let (a, b, y, w) = (lit(a), lit(b), lit(y), lit(width));
            quote!(::hdm::path::add(gin, #a, #b, #y, #w);)
        }
        PStep::Copy { x, y, width } => {
            let (x, y, w) = (lit(x), lit(y), lit(width));
            quote!(::hdm::path::copy(gin, #x, #y, #w);)
        }
        PStep::Route { y, x, width } => {
            let (y, x, w) = (lit(y), lit(x), lit(width));
            quote!(::hdm::path::route(gout, #y, #x, #w);)
        }
    };
    let forward = path.forward.iter().map(|s| step(s, true));
    let backward = path.backward.iter().map(|s| step(s, false));
    let scales = path.scales.iter().map(|&(node, x, y)| {
        let n = &g.nodes[node];
        let info = &g.layers[n.op.layer().expect("a layer node")];
        let (iw, ow) = (g.values[n.inputs[0]].width(), g.values[n.output].width());
        let (xs, xe, ys, ye) = (lit(x), lit(x + iw), lit(y), lit(y + ow));
        let (w, has_bias) = (lit(info.weight_tensor), info.bias_tensor.is_some());
        match n.op {
            NodeOp::Conv { geom, .. } => {
                let (gm, t) = (conv_geometry(&geom), geom.transposed);
                quote!(::hdm::path::conv_factors(pool, states, #w, #has_bias, #gm, #t, &gin[#xs..#xe], &gout[#ys..#ye]);)
            }
            _ => quote!(::hdm::path::layer_factors(states, #w, #has_bias, &gin[#xs..#xe], &gout[#ys..#ye]);),
        }
    });
    let input_w = lit(path.input_width);
    let (oin, oout, ow) = (path.output.0, path.output.1, path.output.2);
    let (oin_s, oin_e, oout_s, oout_e) = (lit(oin), lit(oin + ow), lit(oout), lit(oout + ow));
    let body = quote! {
        fn __path_scales<S: ::hdm::OptimizerState<T>>(
            &self,
            b: &mut Self::Buffers,
            states: &mut [S],
            pool: &::hdm::gemm::Pool<T>,
        ) -> T {
            let (gin, gout) = (&mut b.path_in[..], &mut b.path_out[..]);
            gin[..#input_w].fill(T::one());
            #(#forward)*
            gout.fill(T::zero());
            gout[#oout_s..#oout_e].fill(T::one());
            #(#backward)*
            #(#scales)*
            gin[#oin_s..#oin_e].iter().copied().sum()
        }
    };
    (fields, inits, capability, body)
}
