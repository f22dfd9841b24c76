fn main() -> std::process::ExitCode {
    pv_cli::main()
}
