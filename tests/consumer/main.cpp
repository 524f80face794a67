// Example 1 through an installed tapegrad: exits 0 when the gradients match.
#include <tapegrad/tapegrad.hpp>

int main() {
  namespace tg = tapegrad;
  tg::Scalar x = tg::var(-2), y = tg::var(5), z = tg::var(-4);
  tg::Scalar f = (x + y) * z;
  f.backward();
  return (f.value() == -12 && x.grad() == -4 && y.grad() == -4 && z.grad() == 3) ? 0 : 1;
}
