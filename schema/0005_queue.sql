-- Tables and columns for the durable outbound queue and rate limiting (issue 5).

SELECT 1;
