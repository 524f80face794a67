// Weight layouts: a parameter kept in memory as its transpose still reads,
// writes and saves in its declared order, and a Linear layer computes the
// same values and gradients whichever way it keeps its weight.
#include <fmt/format.h>
#include <unistd.h>
#include <tapegrad/nn.hpp>
#include <tapegrad/threads.hpp>

#include <filesystem>
#include <random>

#include "helpers.hpp"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using Catch::Matchers::Contains;

namespace {

// A batch of `rows` inputs, about half exact zeros in runs, like images.
std::vector<double> sparse_batch(std::int64_t rows, std::int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> x(static_cast<std::size_t>(rows * cols));
  bool zero = false;
  for (double& v : x) {
    if (u(rng) < 0.1) zero = !zero;
    v = zero ? 0.0 : u(rng);
  }
  return x;
}

// Loss of `model` on the batch, after backward.
double loss_and_grads(nn::MLP& model, const std::vector<double>& x, std::int64_t rows,
                      tg::DType dtype) {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  model.zero_grad();
  const std::int64_t in = model.sizes().front();
  const tg::Tensor xt = tg::tensor(x, {rows, in}, {.dtype = dtype});
  std::vector<std::int32_t> labels;
  for (std::int64_t r = 0; r < rows; ++r)
    labels.push_back(static_cast<std::int32_t>(r % model.sizes().back()));
  tg::Tensor loss = nn::cross_entropy(model(xt), labels);
  loss.backward();
  return loss.item().value();
}

void check_same(nn::Module& a, nn::Module& b, double tol) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].first);
    CHECK(pa[i].second->shape() == pb[i].second->shape());
    const auto va = pa[i].second->values(), vb = pb[i].second->values();
    const auto ga = pa[i].second->grads(), gb = pb[i].second->grads();
    for (std::size_t k = 0; k < va.size(); ++k) {
      CHECK(std::abs(va[k] - vb[k]) <= tol);
      CHECK(std::abs(ga[k] - gb[k]) <= tol);
    }
  }
}

}  // namespace

TEST_CASE("a parameter stored transposed keeps its declared order outside memory", "[nn][layout]") {
  nn::Parameter p("w", {2, 3}, tg::DType::f64, true);
  CHECK(p.shape() == tg::Shape{2, 3});
  CHECK(p.stored_shape() == tg::Shape{3, 2});
  const std::vector<double> v{1, 2, 3, 4, 5, 6};
  p.set_values(v);
  CHECK(p.values() == v);
  const auto mem = p.value<double>();
  CHECK(std::vector<double>(mem.begin(), mem.end()) == std::vector<double>{1, 4, 2, 5, 3, 6});
  p.grad<double>()[1] = 7.0;  // memory (0, 1): declared (1, 0)
  CHECK(p.grads()[3] == 7.0);
  tg::Tape tape;
  CHECK(p.var(tape).shape() == tg::Shape{3, 2});
  CHECK_THROWS_WITH(
      nn::Parameter("t", {2, 3, 4}, tg::DType::f32, true),
      Contains("parameter t: only a matrix can be stored transposed, not shape (2x3x4)"));
}

TEST_CASE("a Linear layer computes the same in either weight layout", "[nn][layout]") {
  const auto x = sparse_batch(6, 5, 1);
  nn::MLP a({5, 7, 3},
            {.dtype = tg::DType::f64, .seed = 3, .first_layout = nn::WeightLayout::out_in});
  nn::MLP b({5, 7, 3},
            {.dtype = tg::DType::f64, .seed = 3, .first_layout = nn::WeightLayout::in_out});
  CHECK(a.layer(0).layout() == nn::WeightLayout::out_in);
  CHECK(b.layer(0).layout() == nn::WeightLayout::in_out);
  CHECK(b.layer(1).layout() == nn::WeightLayout::out_in);
  const double la = loss_and_grads(a, x, 6, tg::DType::f64);
  const double lb = loss_and_grads(b, x, 6, tg::DType::f64);
  CHECK(std::abs(la - lb) <= 1e-14);
  check_same(a, b, 1e-14);
  // And one Adam step later.
  nn::Adam oa(a.parameters(), {}), ob(b.parameters(), {});
  oa.step();
  ob.step();
  loss_and_grads(a, x, 6, tg::DType::f64);
  loss_and_grads(b, x, 6, tg::DType::f64);
  check_same(a, b, 1e-13);
}

TEST_CASE("a float batch with many zeros takes the sparse products in the in_out layout",
          "[nn][layout][sparse]") {
  tg::set_num_threads(2);
  const std::int64_t rows = 64;
  const auto x = sparse_batch(rows, 256, 2);
  nn::MLP a({256, 64, 10}, {.seed = 4, .first_layout = nn::WeightLayout::out_in});
  nn::MLP b({256, 64, 10}, {.seed = 4});  // in_out by default
  loss_and_grads(a, x, rows, tg::DType::f32);
  const auto before = tg::sparse_gemm_count();
  loss_and_grads(b, x, rows, tg::DType::f32);
#if defined(__AVX512F__)
  CHECK(tg::sparse_gemm_count() >= before + 2);  // the forward x W and the weight gradient x^T g
#endif
  check_same(a, b, 1e-5);
}

TEST_CASE("a checkpoint loads into either weight layout", "[nn][layout][checkpoint]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / fmt::format("tapegrad-layout-{}", ::getpid());
  fs::create_directories(dir);
  const std::string path = (dir / "c.tgc").string();
  const auto x = sparse_batch(4, 5, 5);
  for (const auto from : {nn::WeightLayout::in_out, nn::WeightLayout::out_in}) {
    const auto to =
        from == nn::WeightLayout::in_out ? nn::WeightLayout::out_in : nn::WeightLayout::in_out;
    INFO("saved from " << (from == nn::WeightLayout::in_out ? "in_out" : "out_in"));
    nn::MLP a({5, 6, 3}, {.dtype = tg::DType::f64, .seed = 6, .first_layout = from});
    nn::MLP b({5, 6, 3}, {.dtype = tg::DType::f64, .seed = 7, .first_layout = to});
    nn::Adam oa(a.parameters(), {}), ob(b.parameters(), {});
    loss_and_grads(a, x, 4, tg::DType::f64);
    oa.step();
    nn::save_checkpoint(path, a, &oa, {});
    nn::load_checkpoint(path, b, &ob);
    // Values and Adam's moments came across in declared order: the next
    // step is the same on both.
    loss_and_grads(a, x, 4, tg::DType::f64);
    loss_and_grads(b, x, 4, tg::DType::f64);
    oa.step();
    ob.step();
    loss_and_grads(a, x, 4, tg::DType::f64);
    loss_and_grads(b, x, 4, tg::DType::f64);
    check_same(a, b, 1e-13);
  }
  fs::remove_all(dir);
}
