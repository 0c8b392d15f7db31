# The module is built with the hardening Debian builds nginx with
# (scripts/build.sh): full RELRO with immediate binding, the stack
# protector and FORTIFY_SOURCE's checked calls. A build that loses them
# (nginx-dev's conf_flags alone give `-O` and nothing else) fails here.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest qw(-nomodule);

my $so = PgTest::module_path();
ok(-f $so, "the module is built ($so)") or BAIL_OUT('no module');

sub run_readelf (@args) {
    open(my $fh, '-|', 'readelf', @args, $so) or die "readelf: $!";
    local $/;
    my $out = <$fh>;
    close($fh);
    return $out // '';
}

my $dynamic = run_readelf('-dW');
if ($dynamic =~ /NEEDED.*libasan/) {
    plan skip_all => 'a sanitizer build (scripts/sanitize.sh) has its own flags';
}
like($dynamic, qr/\(FLAGS\)\s+BIND_NOW/, 'immediate binding (-z now)');
like($dynamic, qr/\(FLAGS_1\)\s+Flags:.*\bNOW\b/, 'DF_1_NOW');
like(run_readelf('-lW'), qr/GNU_RELRO/, 'a RELRO segment (-z relro)');

my $symbols = run_readelf('--dyn-syms', '-W');
like($symbols, qr/\b__stack_chk_fail\b/, 'the stack protector is in (-fstack-protector-strong)');
like($symbols, qr/\b__\w+_chk\b(?<!__stack_chk)/, 'FORTIFY_SOURCE checked calls are in (-D_FORTIFY_SOURCE=2)');
my @unchecked = $symbols =~ /\b(sprintf|strcpy|strcat)\b/g;
is(scalar @unchecked, 0, 'no unchecked sprintf/strcpy/strcat') or diag("@unchecked");

done_testing();
