const x: string = "hello " + process.version;
console.log(x);
