// A training step in steady state makes no heap allocation: tensor buffers
// come back from the tape's pool and the node lists keep their capacity.
#include <tapegrad/nn.hpp>

#include <cstdlib>
#include <cstring>
#include <new>

#include "helpers.hpp"

// The replacements below pair malloc with free on purpose; GCC cannot see
// that the replaced operator new is malloc and warns when it inlines them.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
thread_local bool t_counting = false;
thread_local std::uint64_t t_news = 0;
}  // namespace

// Counting replacements of the global allocation functions (this thread only,
// and only while a test asks for it).
void* operator new(std::size_t n) {
  if (t_counting) ++t_news;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (t_counting) ++t_news;
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
  return ::operator new(n, t);
}
void* operator new(std::size_t n, std::align_val_t a) {
  if (t_counting) ++t_news;
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
// Every form of delete frees: all the news above come from malloc.
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

TEST_CASE("a training step in steady state allocates nothing", "[alloc]") {
  namespace nn = tapegrad::nn;
  nn::MLP model({16, 32, 8, 4}, {.seed = 3});
  nn::Adam adam(model.parameters(), {});
  tg::Tape tape;
  tg::TapeScope scope(tape);
  std::vector<float> x(32 * 16, 0.25f);
  std::vector<std::int32_t> y(32, 2);
  const auto step = [&] {
    tape.clear();
    tg::Tensor loss =
        nn::cross_entropy(model(tg::external({32, 16}, tg::DType::f32, x.data(), nullptr)), y);
    adam.zero_grad();
    loss.backward();
    adam.step();
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up fills the pool
  const std::uint64_t buffers = tg::buffer_allocations();
  t_news = 0;
  t_counting = true;
  for (int i = 0; i < 5; ++i) step();
  t_counting = false;
  CHECK(t_news == 0);
  CHECK(tg::buffer_allocations() == buffers);
}

TEST_CASE("a replayed gradient allocates nothing", "[alloc][replay]") {
  tg::Function fn = tg::Function::record(std::vector<double>{0.5, 1.5}, [](auto in) {
    tg::Scalar acc = in[0];
    for (int i = 0; i < 100; ++i) acc = tg::tanh(acc * in[1] + 0.5) - acc / 3.0;
    return acc;
  });
  std::vector<double> x{0.7, 1.1}, g(2);
  fn.gradient(x, g);  // first call sizes the adjoints
  t_news = 0;
  t_counting = true;
  for (int i = 0; i < 10; ++i) fn.gradient(x, g);
  t_counting = false;
  CHECK(t_news == 0);
}

TEST_CASE("buffers placed at an offset within a page", "[alloc]") {
  for (std::size_t offset : {0, 64, 1024, 4032}) {
    for (std::size_t bytes : {1, 100, 4096, 1 << 20}) {
      CAPTURE(offset, bytes);
      tg::Buffer b(bytes, offset);
      REQUIRE(b.data() != nullptr);
      CHECK(b.bytes() == bytes);
      CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 4096 == offset);
      std::memset(b.data(), 0xab, bytes);  // every byte is ours (ASan would say otherwise)
      tg::Buffer moved(std::move(b));
      CHECK(b.data() == nullptr);
      CHECK(static_cast<unsigned char*>(moved.data())[bytes - 1] == 0xab);
      tg::Buffer other(16, 128);
      other = std::move(moved);  // frees other's memory, takes moved's
      CHECK(reinterpret_cast<std::uintptr_t>(other.data()) % 4096 == offset);
    }
  }
  CHECK(tg::Buffer(0, 1024).data() == nullptr);
  // A parameter, its gradient and an optimiser's two moments start apart.
  tg::nn::Parameter p("w", tg::Shape{300, 300}, tg::DType::f32);
  tg::nn::Adam adam({&p}, {});
  const auto page = [](const void* q) { return reinterpret_cast<std::uintptr_t>(q) % 4096; };
  std::vector<std::uintptr_t> at{page(p.raw_value()), page(p.raw_grad())};
  for (const auto& s : adam.state()) at.push_back(page(s.data));
  CHECK(at == std::vector<std::uintptr_t>{0, 1024, 2048, 3072});
}
