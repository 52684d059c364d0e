# Rust toolchain installed by the android stage (rustup + cargo, uid 1001).
export CARGO_HOME=/usr/local/cargo
export RUSTUP_HOME=/usr/local/rustup
case ":$PATH:" in
  *":$CARGO_HOME/bin:"*) ;;
  *) PATH="$CARGO_HOME/bin:$PATH" ;;
esac
export PATH
