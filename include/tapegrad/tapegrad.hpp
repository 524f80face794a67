#pragma once
// tapegrad: reverse-mode automatic differentiation on a tape.
//
// Every operation on a Scalar or a Tensor appends a node to the current tape
// with its value and its local derivatives; backward() walks the tape once in
// reverse and sends gradients down every edge as upstream x local.
//
//   #include <tapegrad/tapegrad.hpp>
//   namespace tg = tapegrad;
//
//   tg::Scalar x = tg::var(-2), y = tg::var(5), z = tg::var(-4);
//   tg::Scalar f = (x + y) * z;      // q = 3, f = -12
//   f.backward();
//   // x.grad() == -4, y.grad() == -4, z.grad() == 3
//
//   tg::Tensor w = tg::tensor({{0.15, 0.20}, {0.25, 0.30}}, {.requires_grad = true});
//   tg::Tensor a = tg::sigmoid(tg::matmul(w, tg::tensor({0.05, 0.10}, {2, 1})));
//   tg::sum(a).backward();           // w.grads() now holds d sum(a) / d w
//
//   tg::current_tape().clear();      // next step: same memory, new graph
#include "tapegrad/dtype.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/gradcheck.hpp"
#include "tapegrad/higher.hpp"
#include "tapegrad/ops.hpp"
#include "tapegrad/real.hpp"
#include "tapegrad/replay.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/shape.hpp"
#include "tapegrad/sparse.hpp"
#include "tapegrad/tape.hpp"
#include "tapegrad/tensor.hpp"
#include "tapegrad/userfn.hpp"
#include "tapegrad/vector_function.hpp"
