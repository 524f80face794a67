// Worked examples 1-4 of docs/backprop.md, each built twice: from
// Scalars node by node, and from tensor ops. Figures are the reference's, to
// 6 decimals.
#include "helpers.hpp"

namespace {
constexpr double k6 = 5e-7;  // "to 6 decimals"
}

TEST_CASE("example 1: (x + y) z from Scalars", "[worked]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(-2), y = tg::var(5), z = tg::var(-4);
  tg::Scalar q = x + y;
  tg::Scalar f = q * z;
  f.backward();
  CHECK(q.value() == 3);
  CHECK(f.value() == -12);
  CHECK(x.grad() == -4);
  CHECK(y.grad() == -4);
  CHECK(z.grad() == 3);
  CHECK(q.grad() == -4);
}

TEST_CASE("example 1: (x + y) z from tensors", "[worked]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor x = tg::tensor({-2.0}, {.requires_grad = true});
  tg::Tensor y = tg::tensor({5.0}, {.requires_grad = true});
  tg::Tensor z = tg::tensor({-4.0}, {.requires_grad = true});
  tg::Tensor f = (x + y) * z;
  f.backward();
  CHECK(f.value(0) == -12);
  CHECK(x.grad(0) == -4);
  CHECK(y.grad(0) == -4);
  CHECK(z.grad(0) == 3);
}

TEST_CASE("example 2: sigmoid neuron from Scalars", "[worked]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar w0 = tg::var(2), x0 = tg::var(-1), w1 = tg::var(-3), x1 = tg::var(-2),
             w2 = tg::var(-3);
  tg::Scalar s = w0 * x0 + w1 * x1 + w2;
  tg::Scalar f = tg::sigmoid(s);
  f.backward();
  CHECK(s.value() == 1);
  CHECK(f.value() == Approx(0.731059).margin(k6));
  CHECK(s.grad() == Approx(0.196612).margin(k6));
  CHECK(w0.grad() == Approx(-0.196612).margin(k6));
  CHECK(x0.grad() == Approx(0.393224).margin(k6));
  CHECK(w1.grad() == Approx(-0.393224).margin(k6));
  CHECK(x1.grad() == Approx(-0.589836).margin(k6));
  CHECK(w2.grad() == Approx(0.196612).margin(k6));
}

TEST_CASE("example 2: sigmoid neuron from tensors", "[worked]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor w = tg::tensor({{2, -3}}, {.requires_grad = true});         // (1,2)
  tg::Tensor x = tg::tensor({-1, -2}, {2, 1}, {.requires_grad = true});  // (2,1)
  tg::Tensor b = tg::tensor({-3.0}, {1, 1}, {.requires_grad = true});
  tg::Tensor f = tg::sigmoid(tg::matmul(w, x) + b);
  f.backward();
  CHECK(f.value(0) == Approx(0.731059).margin(k6));
  require_close(w.grads(), {-0.196612, -0.393224}, k6);
  require_close(x.grads(), {0.393224, -0.589836}, k6);
  require_close(b.grads(), {0.196612}, k6);
}

namespace {
// Reference figures of example 3.
const std::vector<double> kA1{0.593270, 0.596884}, kA2{0.751365, 0.772928};
const std::vector<double> kGW2{0.082167, 0.082668, -0.022603, -0.022740}, kGb2{0.138499, -0.038098};
const std::vector<double> kGW1{0.000439, 0.000877, 0.000498, 0.000995}, kGb1{0.008771, 0.009954};
constexpr double kE3 = 0.298371;
}  // namespace

TEST_CASE("example 3: 2-2-2 sigmoid network from Scalars", "[worked]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const double x[2] = {0.05, 0.10}, r[2] = {0.01, 0.99};
  tg::Scalar W1[2][2] = {{tg::var(0.15), tg::var(0.20)}, {tg::var(0.25), tg::var(0.30)}};
  tg::Scalar b1[2] = {tg::var(0.35), tg::var(0.35)};
  tg::Scalar W2[2][2] = {{tg::var(0.40), tg::var(0.45)}, {tg::var(0.50), tg::var(0.55)}};
  tg::Scalar b2[2] = {tg::var(0.60), tg::var(0.60)};
  tg::Scalar a1[2], a2[2];
  for (int i = 0; i < 2; ++i) a1[i] = tg::sigmoid(W1[i][0] * x[0] + W1[i][1] * x[1] + b1[i]);
  for (int i = 0; i < 2; ++i) a2[i] = tg::sigmoid(W2[i][0] * a1[0] + W2[i][1] * a1[1] + b2[i]);
  tg::Scalar d0 = a2[0] - r[0], d1 = a2[1] - r[1];
  tg::Scalar E = 0.5 * (d0 * d0 + d1 * d1);
  E.backward();
  CHECK(E.value() == Approx(kE3).margin(k6));
  require_close({a1[0].value(), a1[1].value()}, kA1, k6);
  require_close({a2[0].value(), a2[1].value()}, kA2, k6);
  require_close({W2[0][0].grad(), W2[0][1].grad(), W2[1][0].grad(), W2[1][1].grad()}, kGW2, k6);
  require_close({b2[0].grad(), b2[1].grad()}, kGb2, k6);
  require_close({W1[0][0].grad(), W1[0][1].grad(), W1[1][0].grad(), W1[1][1].grad()}, kGW1, k6);
  require_close({b1[0].grad(), b1[1].grad()}, kGb1, k6);
}

TEST_CASE("example 3: 2-2-2 sigmoid network from tensor ops", "[worked]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor x = tg::tensor({0.05, 0.10}, {2, 1});
  tg::Tensor r = tg::tensor({0.01, 0.99}, {2, 1});
  tg::Tensor W1 = tg::tensor({{0.15, 0.20}, {0.25, 0.30}}, {.requires_grad = true});
  tg::Tensor b1 = tg::tensor({0.35, 0.35}, {2, 1}, {.requires_grad = true});
  tg::Tensor W2 = tg::tensor({{0.40, 0.45}, {0.50, 0.55}}, {.requires_grad = true});
  tg::Tensor b2 = tg::tensor({0.60, 0.60}, {2, 1}, {.requires_grad = true});
  tg::Tensor a1 = tg::sigmoid(tg::matmul(W1, x) + b1);
  tg::Tensor a2 = tg::sigmoid(tg::matmul(W2, a1) + b2);
  tg::Tensor E = 0.5 * tg::sum(tg::pow(a2 - r, 2));
  E.backward();
  CHECK(E.value(0) == Approx(kE3).margin(k6));
  require_close(a1.values(), kA1, k6);
  require_close(a2.values(), kA2, k6);
  require_close(W2.grads(), kGW2, k6);
  require_close(b2.grads(), kGb2, k6);
  require_close(W1.grads(), kGW1, k6);
  require_close(b1.grads(), kGb1, k6);
}

namespace {
const std::vector<double> kGrad4{-0.001014, -0.003038, -0.003617, -0.010831, -0.053381, -0.053602};
}

TEST_CASE("example 4: 2-2-1 network without biases from Scalars", "[worked]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const double x1 = 0.23, x2 = 0.82;
  tg::Scalar w[6];
  const double w0[6] = {0.1, 0.5, 0.4, 0.3, 0.2, 0.6};
  for (int i = 0; i < 6; ++i) w[i] = tg::var(w0[i]);
  tg::Scalar ha = tg::sigmoid(x1 * w[0] + x2 * w[2]);
  tg::Scalar hb = tg::sigmoid(x1 * w[1] + x2 * w[3]);
  tg::Scalar y = tg::sigmoid(ha * w[4] + hb * w[5]);
  tg::Scalar E = 0.5 * tg::pow(y - 1.0, 2);
  E.backward();
  CHECK(ha.value() == Approx(0.586860).margin(k6));
  CHECK(hb.value() == Approx(0.589282).margin(k6));
  CHECK(y.value() == Approx(0.615607).margin(k6));
  CHECK(E.value() == Approx(0.073879).margin(k6));
  std::vector<double> g;
  for (auto& wi : w) g.push_back(wi.grad());
  require_close(g, kGrad4, k6);
  // One SGD step, eta = 0.7.
  std::vector<double> after;
  for (auto& wi : w) wi.set_value(wi.value() - 0.7 * wi.grad()), after.push_back(wi.value());
  require_close(after, {0.100710, 0.502127, 0.402532, 0.307582, 0.237367, 0.637521}, k6);
}

TEST_CASE("example 4: 2-2-1 network without biases from tensor ops", "[worked]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor x = tg::tensor({0.23, 0.82}, {2, 1});
  // Row i of W1 feeds hidden node i: a = (w1, w3), b = (w2, w4).
  tg::Tensor W1 = tg::tensor({{0.1, 0.4}, {0.5, 0.3}}, {.requires_grad = true});
  tg::Tensor W2 = tg::tensor({{0.2, 0.6}}, {.requires_grad = true});
  tg::Tensor y = tg::sigmoid(tg::matmul(W2, tg::sigmoid(tg::matmul(W1, x))));
  tg::Tensor E = 0.5 * tg::sum(tg::pow(y - 1.0, 2));
  E.backward();
  CHECK(E.value(0) == Approx(0.073879).margin(k6));
  const auto g1 = W1.grads(), g2 = W2.grads();
  require_close({g1[0], g1[2], g1[1], g1[3], g2[0], g2[1]}, kGrad4, k6);
}
