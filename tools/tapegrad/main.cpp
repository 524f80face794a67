// The tapegrad command line.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <optional>
#include "inspect_cmds.hpp"

#include "tapegrad/dist.hpp"
#include "tapegrad/error.hpp"
#include "train.hpp"

int main(int argc, char** argv) {
  namespace cli = tapegrad::cli;
  CLI::App app{"tapegrad: reverse-mode automatic differentiation on a tape"};
  app.require_subcommand(1);

  cli::TrainOptions t;
  CLI::App* train =
      app.add_subcommand("train", "train an MLP and write metrics, plots and a checkpoint");
  train
      ->add_option("--data", t.data, "fashion-mnist | mnist:DIR | csv:PATH | xor | moons | spirals")
      ->capture_default_str();
  train->add_option("--csv-label", t.csv_label, "label column of a CSV: name or 0-based index")
      ->capture_default_str();
  train->add_option("--hidden", t.hidden, "hidden layer sizes, e.g. 256,128")
      ->delimiter(',')
      ->capture_default_str();
  train->add_option("--activation", t.activation, "relu | leaky_relu | sigmoid | tanh | identity")
      ->capture_default_str();
  train
      ->add_option("--loss", t.loss,
                   "ce (softmax cross-entropy) | mse (half squared error of the softmax)")
      ->capture_default_str();
  train->add_option("--optimizer", t.optimizer, "adam | sgd")->capture_default_str();
  train->add_option("--lr", t.lr, "learning rate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train->add_option("--momentum", t.momentum, "SGD momentum")->capture_default_str();
  train->add_option("--weight-decay", t.weight_decay, "weight decay")->capture_default_str();
  train->add_option("--schedule", t.schedule, "cosine | constant learning rate")
      ->capture_default_str();
  train->add_option("--batch-size", t.batch_size, "samples per step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train->add_option("--epochs", t.epochs, "passes over the training set")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train->add_option("--seed", t.seed, "seed for initialisation and shuffling")
      ->capture_default_str();
  train->add_option("--threads", t.threads, "threads for matrix products (0: all cores)")
      ->capture_default_str();
  train
      ->add_option("--replicas", t.replicas,
                   "split each batch over N threads, each with its own tape and one core for its "
                   "products (0: one per thread when the batch allows)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  train->add_option("--out", t.out, "output folder")->capture_default_str();
  train->add_option("--limit", t.limit, "use only the first N training samples")
      ->capture_default_str();
  train
      ->add_option("--check-every", t.check_every,
                   "under mpirun: compare the parameters of all ranks every N steps (0: never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  train->add_flag("--resume", t.resume, "continue from the output folder's checkpoint");
  train->add_flag("--quiet", t.quiet, "print only the summary");
  train->add_flag("!--no-plot", t.plot, "do not run gnuplot");
  train->add_flag("!--no-graph", t.graph, "do not write graph.svg");
  train->add_flag("!--no-report", t.report, "do not write report.html");
  train->add_flag("--checkpoint-layers", t.checkpoint_layers,
                  "keep only each layer's output on the tape and recompute the layer in the "
                  "backward sweep: less activation memory for a second forward");
  train
      ->add_flag("--fused-update{on}", t.fused_update,
                 "update each parameter inside the backward sweep, not after it: on (the "
                 "flag alone), off, or auto (on for batches of one row on two or more threads)")
      ->capture_default_str();

  cli::GradOptions g;
  CLI::App* grad =
      app.add_subcommand("grad", "evaluate an expression and every partial derivative");
  grad->add_option("expression", g.expression, "e.g. '(x+y)*z'")->required();
  grad->add_option("--at", g.at,
                   "variable values, e.g. x=-2,y=5,z=-4; repeat for more points (recorded once, "
                   "replayed at the rest)")
      ->allow_extra_args(false);
  grad->add_option("--dot", g.dot, "write the graph to FILE (.svg, .png, .pdf or .dot)");
  grad->add_option("--html", g.html,
                   "write FILE: a self-contained page that steps through the backward sweep");
  grad->add_flag("--trace", g.trace, "print the forward and backward sweeps as flat code");
  grad->add_flag("--check", g.check, "check the gradient against central finite differences");
  grad->add_flag("--json", g.json, "print value, gradient (and check) as JSON");
  grad->add_flag("--stats", g.stats, "print what the tape holds: bytes by part, peak, nodes by op");
  grad->add_option("--jvp", g.jvp,
                   "a direction, e.g. x=1,y=0: also print the directional derivative (forward "
                   "mode)");

  cli::HessianOptions h;
  CLI::App* hess = app.add_subcommand(
      "hessian", "evaluate an expression, its gradient and its Hessian (forward-over-reverse)");
  hess->add_option("expression", h.expression,
                   "e.g. '(1-x)^2 + 100*(y-x^2)^2'; several separated by ';' give the Hessian of "
                   "their weighted sum")
      ->required();
  hess->add_option("--at", h.at, "variable values, e.g. x=1.5,y=2")->required();
  hess->add_option("--weights", h.weights, "one weight per expression, e.g. 1,0.5 (default all 1)");
  hess->add_flag("--sparse", h.sparse,
                 "only the lower triangle's nonzeros, by one pass per color of a star coloring");
  hess->add_flag("--json", h.json, "print value, gradient and Hessian as JSON");

  cli::JacobianOptions jo;
  CLI::App* jac = app.add_subcommand(
      "jacobian", "evaluate several expressions and their Jacobian, dense or sparse");
  jac->add_option("expressions", jo.expressions, "separated by ';', e.g. 'x*y; sin(x)+z'")
      ->required();
  jac->add_option("--at", jo.at, "variable values, e.g. x=1,y=2,z=3")->required();
  jac->add_flag("--sparse", jo.sparse,
                "only the nonzeros, by compressed sweeps (one per color of the pattern)");
  jac->add_flag("--json", jo.json,
                "print inputs, values and the Jacobian (rows, or with --sparse rows/cols/values)");
  jac->add_option("--pattern", jo.pattern,
                  "draw the sparsity pattern: '-' prints it as text, FILE.svg writes a picture, "
                  "any other FILE the text");

  cli::GradcheckCliOptions gc;
  CLI::App* gcheck =
      app.add_subcommand("gradcheck", "check every registered op against finite differences");
  gcheck->add_option("--op", gc.op, "check only this op");
  gcheck->add_option("--seed", gc.seed, "seed of the random inputs")->capture_default_str();
  gcheck->add_flag("--json", gc.json, "print the results as JSON");
  gcheck
      ->add_option("--order", gc.order,
                   "2: also check forward mode and Hessian-vector products of every op")
      ->capture_default_str();

  cli::ExampleOptions ex;
  CLI::App* example =
      app.add_subcommand("example", "build a worked example of the reference notes (1-4)");
  example->add_option("number", ex.number, "1, 2, 3 or 4")->required();
  example->add_option("--dot", ex.dot, "write the graph to FILE (.svg, .png, .pdf or .dot)");
  example->add_option("--html", ex.html,
                      "write FILE: a self-contained page that steps through the backward sweep");
  example->add_flag("--trace", ex.trace, "print the sweeps as flat code");
  example->add_flag("--check", ex.check, "run the per-node gradient check");

  CLI11_PARSE(app, argc, argv);
  // MPI runs only for training, and only under mpirun (see dist.hpp).
  std::optional<tapegrad::dist::Session> mpi;
  try {
    if (*train) {
      mpi.emplace(argc, argv);
      return cli::run_train(t);
    }
    if (*grad) return cli::run_grad(g);
    if (*hess) return cli::run_hessian(h);
    if (*jac) return cli::run_jacobian(jo);
    if (*gcheck) return cli::run_gradcheck(gc);
    if (*example) return cli::run_example(ex);
  } catch (const std::exception& e) {
    // An error on one rank ends them all, its message printed once.
    if (tapegrad::dist::active()) tapegrad::dist::abort(e.what());
    fmt::print(stderr, "tapegrad: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
