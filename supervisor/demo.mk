# SPDX-License-Identifier: Apache-2.0
# demo.mk: `make demo` plays the seed's transcript with the real programs
# under etssup, in a private runtime dir that it removes afterwards.
.PHONY: demo
demo: all
	@supervisor/demo.sh $(BIN)
