# ctest driver: install the built tapegrad into a scratch prefix, then
# configure, build and run the consumer project against it.
set(prefix ${BIN}/consumer-prefix)
file(REMOVE_RECURSE ${prefix} ${BIN}/consumer-build)
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BIN} --prefix ${prefix} RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "install failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${BIN}/consumer-build -DCMAKE_PREFIX_PATH=${prefix}
                        -DCMAKE_CXX_FLAGS=${FLAGS} RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configure of the consumer failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BIN}/consumer-build RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "build of the consumer failed: ${rc}")
endif()
foreach(exe consumer consumer_eigen)
  execute_process(COMMAND ${BIN}/consumer-build/${exe} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "${exe} computed wrong gradients: ${rc}")
  endif()
endforeach()
# The Python package, from where `cmake --install` put it.
if(PYTHON)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env PYTHONPATH=${prefix}/${PYDIR} ${PYTHON} -c
                          "import tapegrad as tg; assert tg.__file__.startswith('${prefix}'), tg.__file__; x = tg.Scalar(3.0); (x * x).backward(); assert x.grad == 6.0; from tapegrad import nn; assert nn.MLP([2, 2]).parameter_count == 6"
                  RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "the installed Python package does not import from ${prefix}/${PYDIR}: ${rc}")
  endif()
endif()
